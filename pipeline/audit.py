"""Who changed what: every change to mutes, rules and groups, appended to the audit index in Elasticsearch.

The record is written before the change is made (`Audit.record`), so a change Elasticsearch could not take is
not made; it is refreshed on write (changes are few, made by people), so reads list it at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from elasticsearch import Elasticsearch

from pipeline import store
from pipeline.rule_words import describe_rule_fully
from pipeline.schema import AckReason, iso


@dataclass(frozen=True)
class Actor:
    """Who made a change, and through which front-end (`id`: e.g. a Slack user id); `tickwatch` is the pipeline
    itself (a mute that ended when its condition was met)."""

    name: str
    via: Literal["slack", "api", "cli", "tickwatch"]
    id: str | None = None


PIPELINE = Actor("tickwatch", "tickwatch")


@dataclass(frozen=True)
class Change:
    """One audited change: what it did, to which target (a symbol or `group:NAME`), before and after, who, when."""

    action: str  # set_rule, reset_rule, mute, unmute, add_window, remove_window, group_…, acknowledge
    symbol: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    actor: Actor
    at: datetime

    def summary(self) -> str:
        """One line for people: `drop 5% in 5m → drop 3% in 10m`, `muted until 2026-11-24 18:00 UTC: earnings`."""
        if self.action in ("set_rule", "reset_rule"):
            return f"{_describe_rule(self.old)} → {_describe_rule(self.new)}"
        if self.action in ("mute", "add_window") and self.new:
            return f"muted {_mute_words(self.new)}" + (f": {self.new['reason']}" if self.new.get("reason") else "")
        if self.action == "remove_window" and self.old:
            return f"window removed: {self.old.get('says', '')}"
        if self.action.startswith("group_"):
            return _group_summary(self.action, self.old, self.new)
        if self.action == "acknowledge" and self.new:
            return f"acknowledged {self.new['anomaly']}: {AckReason(self.new['reason']).label}"
        ended = (self.new or {}).get("ended")
        return f"unmuted: {ended}" if ended else "unmuted"

    def document(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "action": self.action,
            "symbol": self.symbol,
            "old": self.old,
            "new": self.new,
            "actor": asdict(self.actor),
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Change:
        return cls(
            doc["action"],
            doc["symbol"],
            doc.get("old"),
            doc.get("new"),
            Actor(**doc["actor"]),
            datetime.fromisoformat(doc["at"]),
        )


class Audit:
    """The audit index: `record` before a change, `log` to read the newest first."""

    def __init__(self, es: Elasticsearch, indices: store.Indices) -> None:
        self.es = es
        self.indices = indices

    def record(
        self, action: str, target: str, old: dict[str, Any] | None, new: dict[str, Any] | None, actor: Actor
    ) -> Change:
        change = Change(action, target, old, new, actor, datetime.now(UTC))
        self.es.index(index=self.indices.audit, document=change.document(), refresh=True)
        return change

    def log(self, *, target: str | None = None, limit: int = 50) -> list[Change]:
        """The newest changes first (all targets, or one)."""
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        query = {"term": {"symbol": target}} if target else {"match_all": {}}
        hits = self.es.search(index=self.indices.audit, query=query, size=limit, sort=[{"at": "desc"}])["hits"]["hits"]
        return [Change.from_document(hit["_source"]) for hit in hits]


def _describe_rule(state: dict[str, Any] | None) -> str:
    return "-" if state is None else describe_rule_fully(state)


def _mute_words(state: Mapping[str, Any]) -> str:
    """How a stored mute state reads (`says`, written since mute kinds exist), else its end time."""
    if state.get("says"):
        return str(state["says"])
    until = state.get("until")
    return f"until {until[:16].replace('T', ' ')} UTC" if until else "until unmuted"


def _group_summary(action: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    before = set((old or {}).get("members", []))
    after = set((new or {}).get("members", []))
    if action == "group_delete":
        return f"group deleted ({', '.join(sorted(before)) or 'empty'})"
    added = f"added {', '.join(sorted(after - before)) or 'nothing new'}"
    removed = f"removed {', '.join(sorted(before - after)) or 'nothing'}"
    return {"group_add": added, "group_remove": removed}.get(action, f"{added}; {removed}")
