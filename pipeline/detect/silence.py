"""Mutes as detection applies them: which new episodes they keep quiet, what breaks through, what ends them.

Pure: the workers read the mutes in force (pipeline.controls) and hand them over as `Hush`es; detection asks
the `Silence` of one batch at each tick. A mute ends by itself when its condition is met: a price crossed
(`until above 250`) or the episodes it waited for resolved (`until-resolved`); the batch reports those as
`lifted`, and the worker removes them from Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hush:
    """One mute in force over a symbol (set on the symbol, on one of its groups, or a recurring window)."""

    target: str  # the symbol or group:NAME it was set on
    at: float  # when it was set (epoch s): which mute to lift, should it have been replaced since
    note: str  # `muted by alice: earnings`, for a message that broke through it
    unless: float | None = None  # a move of this multiple of the rule's threshold breaks through
    above: float | None = None  # a tick at or above this price ends the mute
    below: float | None = None  # a tick at or below this price ends the mute
    episodes: frozenset[str] = field(default_factory=frozenset)  # until-resolved: the anomalies it waits for

    def condition(self) -> str:
        """What ends it, as people say it (the audit's reason when it ends)."""
        if self.above is not None:
            return f"price at or above {self.above:g}"
        if self.below is not None:
            return f"price at or below {self.below:g}"
        return "its episodes resolved"

    def met_by(self, price: float) -> bool:
        return (self.above is not None and price >= self.above) or (self.below is not None and price <= self.below)


class Silence:
    """The mutes over one symbol during one batch, as ticks go by."""

    def __init__(self, hushes: Iterable[Hush] = ()) -> None:
        self.hushes = list(hushes)
        self.lifted: list[Hush] = []
        self._priced = any(h.above is not None or h.below is not None for h in self.hushes)
        self._waiting = {h: set(h.episodes) for h in self.hushes if h.episodes}

    @property
    def muted(self) -> bool:
        return bool(self.hushes)

    def tick(self, price: float) -> None:
        """A tick at `price`: price conditions it meets end their mutes (for this tick on)."""
        if self._priced:
            self._lift([h for h in self.hushes if h.met_by(price)])

    def resolved(self, anomaly_id: str) -> None:
        """An episode ended: an until-resolved mute that waited for it alone ends."""
        done = []
        for hush, waiting in self._waiting.items():
            waiting.discard(anomaly_id)
            if not waiting:
                done.append(hush)
        self._lift(done)

    def breaks(self, multiple: float) -> str | None:
        """What a move of `multiple` times its rule's threshold breaks through (every mute in force must allow
        it: `unless 2x`), or None when it stays muted."""
        if not self.hushes or any(h.unless is None or multiple < h.unless for h in self.hushes):
            return None
        return "; ".join(h.note for h in self.hushes)

    def _lift(self, hushes: list[Hush]) -> None:
        for hush in hushes:
            if hush in self.hushes:
                self.hushes.remove(hush)
                self._waiting.pop(hush, None)
                self.lifted.append(hush)
        self._priced = any(h.above is not None or h.below is not None for h in self.hushes)
