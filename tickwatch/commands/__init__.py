"""The `tickwatch` subcommands, one module per group; each has `register(app)`.

Commands are thin: they parse options, call a `pipeline` service and print. Failures are explained once,
for every command, by `tickwatch.errors`.
"""

from __future__ import annotations

import errno
import socket
import sys

from rich.console import Console


def require_free_port(host: str, port: int) -> None:
    """A server command's port must be free: else one line naming it and the flag, and exit 2 (uvicorn would
    print its own error and exit 3, the bot after announcing its URL)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            taken = error.errno == errno.EADDRINUSE
            why = "is already in use" if taken else f"cannot be used ({error.strerror})"
            print(f"✘ port {port} on {host} {why} — pass another with --port, e.g. --port {port + 1}", file=sys.stderr)
            raise SystemExit(2) from None


def clear_leftovers(console: Console) -> None:
    """End what an earlier bench or demo, killed, left running or stored (tickwatch.leftovers)."""
    from pipeline.settings import get_settings
    from tickwatch import leftovers
    from tickwatch.fleet import discard_values

    for line in leftovers.clear(get_settings().stack_dir, discard_values):
        console.print(f"[yellow]cleared what an earlier, killed run left:[/yellow] {line}")
