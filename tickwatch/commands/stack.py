"""`tickwatch stack`: the local real stack (Kafka, Elasticsearch, Redis on loopback) and its topics and indices."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from pipeline.settings import get_settings

console = Console()
stack_app = typer.Typer(
    help="The local real stack: Kafka, Elasticsearch and Redis on loopback, no Docker.", no_args_is_help=True
)


@stack_app.command("up")
def stack_up() -> None:
    """Start Redis, Kafka and Elasticsearch (downloading them once), then create topics and indices.

    Idempotent: running it again leaves running servers alone.

    Example: [bold]tickwatch stack up[/bold]
    """
    from stack import StackError, all_services

    settings = get_settings()
    try:
        for service in all_services(settings):
            with console.status(f"Starting {service.name} on {service.address}…"):
                outcome = service.up()
            console.print(f"[green]✔[/green] {service.name} {service.version() or ''} on {service.address}: {outcome}")
    except StackError as error:
        console.print(f"[red]✘ {error}[/red]")
        raise typer.Exit(1) from None
    stack_init()


@stack_app.command("init")
def stack_init() -> None:
    """Create the Kafka topics and Elasticsearch templates (for servers started elsewhere, e.g. Compose).

    Example: [bold]docker compose up -d && tickwatch stack init[/bold]
    """
    from pipeline import store
    from pipeline.context import Context
    from pipeline.ingest.topics import ensure_topics

    ctx = Context(get_settings())
    settings = ctx.settings
    created = ensure_topics(settings)
    store.ensure_templates(ctx.es, ctx.indices)
    news = f" (created {', '.join(created)})" if created else ""
    console.print(f"[green]✔[/green] topics ready{news}; index templates for {settings.index_prefix}-* installed")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the servers `stack up` started (anything else on those ports is left alone). Data is kept.

    Example: [bold]tickwatch stack down[/bold]
    """
    from stack import all_services

    for service in reversed(all_services(get_settings())):
        stopped = service.down()
        console.print(f"{service.name}: {'stopped' if stopped else 'was not running (from tickwatch)'}")


@stack_app.command("status")
def stack_status() -> None:
    """Show each server with its version and address.

    Example: [bold]tickwatch stack status[/bold]
    """
    from stack import all_services

    table = Table("service", "address", "state", "version", "pid")
    for service in all_services(get_settings()):
        ready = service.ready()
        pid = service.proc.pid()
        table.add_row(
            service.name,
            service.address,
            "[green]ready[/green]" if ready else "[red]down[/red]",
            (service.version() if ready else None) or "-",
            str(pid) if pid else "-",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
