"""Named groups of symbols (`crypto`, `semis`): explicit symbols and glob patterns (`*-USD`), kept in Redis.

A group is a target for mutes and thresholds like a symbol, written `group:NAME`. Which groups a symbol is in
is pure (`groups_of`), so the workers resolve it with the groups they read in their one round trip per batch.
A symbol's own rule beats its group's, which beats the default; of several groups, the first by name wins.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import Redis

from pipeline import keys
from pipeline.schema import SYMBOL_PATTERN, normalise_symbol

PREFIX = "group:"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
WILDCARDS = "*?"
MAX_MEMBERS = 500


def is_group(target: str) -> bool:
    return target.startswith(PREFIX)


def normalise_target(value: str) -> str:
    """`group:Crypto` -> `group:crypto` (a group must be named by letters, digits, - and _), else a symbol."""
    text = value.strip()
    if text.lower().startswith(PREFIX):
        name = text[len(PREFIX) :].lower()
        if not NAME.fullmatch(name):
            raise ValueError("a group name is 1-32 characters of a-z 0-9 - _, e.g. group:semis")
        return PREFIX + name
    return normalise_symbol(text)


def group_name(target: str) -> str:
    """`group:semis` -> `semis`; a bare name is checked the same way."""
    return normalise_target(target if is_group(target) else PREFIX + target)[len(PREFIX) :]


def normalise_member(value: str) -> str:
    """A symbol (`NVDA`) or a glob pattern of symbols (`*-USD`, `SOX?`), upper-cased and checked."""
    member = value.strip().upper()
    if any(c in member for c in WILDCARDS):
        if not SYMBOL_PATTERN.fullmatch(member.replace("*", "A").replace("?", "A")) or member.strip("*?") == "":
            raise ValueError(f"{value!r}: a pattern is a symbol with * or ? in it, e.g. *-USD")
        return member
    return normalise_symbol(member)


def contains(members: Iterable[str], symbol: str) -> bool:
    return any(symbol == m or (any(c in m for c in WILDCARDS) and fnmatch.fnmatchcase(symbol, m)) for m in members)


def groups_of(symbol: str, groups: Mapping[str, Group]) -> list[str]:
    """The names of the groups `symbol` is in, by name (the order precedence takes)."""
    return [name for name in sorted(groups) if contains(groups[name].members, symbol)]


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...]  # symbols and patterns, sorted
    by: str = ""
    at: datetime | None = None

    @property
    def target(self) -> str:
        return PREFIX + self.name

    def state(self) -> dict[str, Any]:
        """What the audit records."""
        return {"members": list(self.members)}

    def encode(self) -> bytes:
        return orjson.dumps({"members": self.members, "by": self.by, "at": self.at.timestamp() if self.at else None})

    @classmethod
    def decode(cls, name: str, raw: bytes | str) -> Group:
        data = orjson.loads(raw)
        at = data.get("at")
        return cls(
            name, tuple(data.get("members", ())), data.get("by", ""), datetime.fromtimestamp(at, UTC) if at else None
        )


def load(redis: Redis) -> dict[str, Group]:
    """Every group, by name."""
    return decode_all(redis.hgetall(keys.GROUPS))


def decode_all(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Group]:
    named = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    return {name: Group.decode(name, value) for name, value in named.items()}


def with_members(group: Group | None, name: str, add: Sequence[str], remove: Sequence[str], by: str) -> Group:
    """The group after adding and removing members (checked); ValueError when it would grow too large."""
    members = set(group.members if group else ()) | {normalise_member(m) for m in add}
    members -= {normalise_member(m) for m in remove}
    if len(members) > MAX_MEMBERS:
        raise ValueError(f"a group has at most {MAX_MEMBERS} members; use a pattern such as *-USD")
    return Group(name, tuple(sorted(members)), by, datetime.now(UTC))
