"""`tickwatch api`, `tickwatch token create | list | revoke` and `tickwatch seed`.

The API server is started from the import string `api.app:create_app` (the CLI never imports `api`).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from tickwatch.commands import require_free_port

console = Console()


def api(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 to serve other hosts")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    loglevel: Annotated[
        str, typer.Option(help="uvicorn's log level: critical, error, warning, info, debug, trace")
    ] = "info",
) -> None:
    """Serve the HTTP API (/v1, OpenAPI docs at /docs, /healthz, /readyz, /metrics).

    Example: [bold]tickwatch api --port 8000[/bold], then
    [bold]curl -H "Authorization: Bearer $TOKEN" localhost:8000/v1/symbols[/bold]
    """
    import uvicorn

    require_free_port(host, port)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=loglevel.lower(),
        proxy_headers=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(api)
