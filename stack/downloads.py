"""Fetch the stack's distributions from Maven Central once, into the download cache.

Maven does the work (transitive dependencies, checksums, mirrors from ~/.m2/settings.xml); we only keep a
copy under the cache directory so later starts are fast and need no network.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from stack.process import StackError

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tickwatch.stack</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""


def _mvn(args: list[str], cwd: Path, what: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch the stack from Maven Central: apt-get install maven")
    result = subprocess.run([mvn, "-q", "-B", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise StackError(f"Downloading {what} from Maven Central failed:\n{tail}")


def kafka_libs(cache_dir: Path, version: str) -> Path:
    """A folder of the Kafka broker's runtime jars (kafka_2.13 and its dependencies)."""
    target = cache_dir / f"kafka-{version}" / "libs"
    if (target / f"kafka_2.13-{version}.jar").exists():
        return target
    with tempfile.TemporaryDirectory(prefix="tickwatch-kafka-") as work:
        (Path(work) / "pom.xml").write_text(_KAFKA_POM.format(version=version))
        staging = Path(work) / "libs"
        _mvn(
            ["dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
            Path(work),
            f"Kafka {version}",
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(staging), target)
    return target


def elasticsearch_zip(cache_dir: Path, version: str) -> Path:
    """The real Elasticsearch distribution (integ-test-zip: no X-Pack, no bundled JDK)."""
    target = cache_dir / f"elasticsearch-{version}.zip"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tickwatch-es-") as work:
        artifact = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
        _mvn(
            ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={work}"],
            Path(work),
            f"Elasticsearch {version}",
        )
        shutil.move(str(Path(work) / f"elasticsearch-{version}.zip"), target)
    return target
