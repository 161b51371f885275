"""`tickwatch api`, `tickwatch token create | list | revoke` and `tickwatch seed`.

The API server is started from the import string `api.app:create_app` (the CLI never imports `api`).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pipeline.settings import get_settings
from tickwatch.commands import require_free_port

console = Console()


def api(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 to serve other hosts")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", "--loglevel", help="DEBUG, INFO, WARNING or ERROR (default: TICKWATCH_LOG_LEVEL, INFO)"
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI docs at /docs, /healthz, /readyz, /metrics).

    Example: [bold]tickwatch api --port 8000[/bold], then
    [bold]curl -H "Authorization: Bearer $TOKEN" localhost:8000/v1/symbols[/bold]
    """
    import uvicorn

    from pipeline import logs

    settings = get_settings()
    require_free_port(host, port)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logs.config(settings, log_level),
        proxy_headers=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(api)
