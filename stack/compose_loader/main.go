// Command compose_loader loads docker-compose.yml with compose-go, the library `docker compose` itself uses
// (interpolation, anchors and merges, profiles, schema validation, depends_on, healthchecks, volumes), and
// prints the resolved project as JSON, as `docker compose config --format json` would. The tests use it to
// check the compose file on machines with no Docker engine.
//
//	go run ./stack/compose_loader --file docker-compose.yml --profile slack
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type profiles []string

func (p *profiles) String() string     { return strings.Join(*p, ",") }
func (p *profiles) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	file := flag.String("file", "docker-compose.yml", "the compose file to load")
	var active profiles
	flag.Var(&active, "profile", "a profile to enable (repeatable)")
	flag.Parse()

	options, err := cli.NewProjectOptions(
		[]string{*file},
		cli.WithOsEnv,
		cli.WithProfiles(active),
	)
	if err != nil {
		fail(err)
	}
	project, err := cli.ProjectFromOptions(context.Background(), options)
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose file invalid:", err)
	os.Exit(1)
}
