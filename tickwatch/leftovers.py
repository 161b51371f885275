"""What a bench or a demo starts, written down as it starts it, so the next run can end what a killed one left.

A run stopped by SIGKILL (or a lost terminal before the signal handlers existed) leaves its workers and bridge
running, orphaned, and a bench lane's private topics, indices and Redis database behind. Each run keeps one
file, `<stack_dir>/runs/<pid>.json`, of the process groups it started and the lanes it made; a run that ends
normally removes its entries. The next bench or demo ends the process groups of files whose owner is gone and
discards their lanes (pipeline.fleet's `discard`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import Settings


def _runs(stack_dir: Path) -> Path:
    return stack_dir / "runs"


def _alive(pid: int) -> bool:
    """Whether `pid` runs a Tickwatch process (a recycled pid of something else is not ours to end)."""
    try:
        return b"tickwatch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass(frozen=True)
class RunLog:
    """One entry (`tag`) of this process's run file: the process groups it started, the lane it uses."""

    stack_dir: Path
    tag: str

    @property
    def path(self) -> Path:
        return _runs(self.stack_dir) / f"{os.getpid()}.json"

    def _update(self, change: Any) -> None:
        entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.exists() else {}
        change(entries.setdefault(self.tag, {"pids": [], "lane": None}))
        entries = {tag: entry for tag, entry in entries.items() if entry}
        if entries:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(entries))
        else:
            self.path.unlink(missing_ok=True)

    def started(self, pid: int) -> None:
        self._update(lambda entry: entry["pids"].append(pid))

    def uses_lane(self, values: dict[str, str]) -> None:
        """The TICKWATCH_* values that select the lane (pipeline.fleet.isolated), to discard it later."""
        self._update(lambda entry: entry.update(lane=values))

    def done(self) -> None:
        self._update(lambda entry: entry.clear())


def clear(stack_dir: Path, discard: Any) -> list[str]:
    """End what runs whose process is gone left behind: their process groups (SIGKILL) and lanes
    (`discard(values)`); returns what was cleared, one line each."""
    cleared: list[str] = []
    for path in sorted(_runs(stack_dir).glob("*.json")):
        with contextlib.suppress(ValueError):
            if _alive(int(path.stem)):
                continue  # a run still in progress
        try:
            entries: dict[str, dict[str, Any]] = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        for tag, entry in entries.items():
            ended = [pid for pid in entry.get("pids", []) if _alive(pid)]
            for pid in ended:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            if entry.get("lane"):
                with contextlib.suppress(Exception):  # already gone in part: what is left goes
                    discard(entry["lane"])
            if ended or entry.get("lane"):
                cleared.append(
                    f"{tag}: ended {len(ended)} leftover process(es)" + (", removed its lane" if entry["lane"] else "")
                )
        path.unlink(missing_ok=True)
    return cleared


@contextlib.contextmanager
def ended_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the command as Ctrl-C does (`timeout`, CI, a closed terminal), so the `finally`
    blocks that stop its processes and remove its lanes run."""

    def leave(signum: int, _: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def settings_of(values: dict[str, str]) -> Settings:
    """Settings from TICKWATCH_* values, validated as if they came from the environment."""
    fields: dict[str, Any] = {key.removeprefix("TICKWATCH_").lower(): value for key, value in values.items()}
    return Settings(**fields)
