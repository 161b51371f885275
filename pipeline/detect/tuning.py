"""Thresholds tuned by acknowledgements: per rule, the threshold that would have kept the alerts people marked
as deserved (a real move, news, expected) and dropped those they marked too sensitive or bad data.

`separate` is pure; `suggest` reads a symbol's acknowledged anomalies of the last TUNING_DAYS and replays the
suggestion over the last days (pipeline.detect.backtest), so each comes with how many alerts it would have
raised. Shared by the bot (`/threshold TSLA suggest`), the API and the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from elasticsearch import Elasticsearch

from pipeline.controls import Controls
from pipeline.detect import backtest
from pipeline.detect.rules import threshold_problem
from pipeline.schema import RULES, AckReason, Anomaly, RuleName, iso
from pipeline.store import Indices

TUNING_DAYS = 30
MAX_LABELLED = 1000
STEP = 0.1  # thresholds are suggested to a tenth (of a %, a sigma, a multiple)


def magnitude(anomaly: Anomaly) -> float | None:
    """What a rule's threshold is compared with, at the episode's peak: |%| for drop, rise and gap, sigmas for
    zscore, the multiple for volume, |own move %| for relative (as detected)."""
    if anomaly.rule == "relative":
        return None if anomaly.own_change_pct is None else abs(anomaly.own_change_pct)
    if anomaly.rule == "zscore":
        return None if anomaly.zscore is None else abs(anomaly.zscore)
    if anomaly.rule == "volume":
        return anomaly.volume_ratio
    return abs(anomaly.peak_change_pct)


def separate(deserved: Sequence[float], undeserved: Sequence[float]) -> float | None:
    """The threshold (a multiple of STEP) with the fewest mistakes: deserved moves it would not alert on
    (m < T) plus undeserved ones it still would (m >= T); among equals, the one missing fewest deserved moves,
    then the quietest. None when nothing was marked undeserved (no reason to move it), or when no threshold
    drops an undeserved alert."""
    if not undeserved:
        return None
    values = [*deserved, *undeserved]
    best: tuple[int, int, float] | None = None
    for k in range(math.floor(min(values) / STEP), math.floor(max(values) / STEP) + 2):
        threshold = round(k * STEP, 6)
        missed = sum(m < threshold for m in deserved)
        noise = sum(m >= threshold for m in undeserved)
        if best is None or (missed + noise, missed, -threshold) < (best[0] + best[1], best[0], -best[2]):
            best = (missed, noise, threshold)
    assert best is not None
    _, noise, threshold = best
    return None if noise == len(undeserved) else threshold


@dataclass(frozen=True)
class Suggestion:
    """One rule's suggestion for a symbol, with the labels it rests on and its replay."""

    rule: RuleName
    current: float
    suggested: float | None
    deserved: int  # alerts marked a real move, news or expected
    undeserved: int  # alerts marked too sensitive or bad data
    preview: backtest.Preview | None  # the suggestion and the current rule over the last days

    @property
    def changes(self) -> bool:
        return self.suggested is not None and self.suggested != self.current


def suggest(es: Elasticsearch, indices: Indices, controls: Controls, symbol: str) -> list[Suggestion]:
    """A suggestion for every rule the symbol has labelled alerts of (others are left out)."""
    found_labels = labelled(es, indices, symbol)
    rules = controls.rules(symbol)
    found = []
    for name in RULES:
        deserved, undeserved = split(found_labels, name)
        if not deserved and not undeserved:
            continue
        threshold = suggested(name, deserved, undeserved)
        current = rules[name].threshold_pct
        preview = (
            backtest.preview(es, indices, controls, symbol, name, threshold_pct=threshold)
            if threshold is not None and threshold != current
            else None
        )
        found.append(Suggestion(name, current, threshold, len(deserved), len(undeserved), preview))
    return found


def split(found: Sequence[Anomaly], rule: RuleName) -> tuple[list[float], list[float]]:
    """The magnitudes of `rule`'s labelled alerts: (deserved, undeserved)."""
    marked = [(a.ack_reason, m) for a in found if a.rule == rule and (m := magnitude(a)) is not None]
    return (
        [m for reason, m in marked if reason is not None and reason.deserved],
        [m for reason, m in marked if reason is not None and not reason.deserved],
    )


def suggested(rule: RuleName, deserved: Sequence[float], undeserved: Sequence[float]) -> float | None:
    """`separate`, within what the rule takes (e.g. never a zscore below 1)."""
    threshold = separate(deserved, undeserved)
    return None if threshold is None or threshold_problem(rule, threshold) else threshold


def labelled(es: Elasticsearch, indices: Indices, symbol: str, *, end: datetime | None = None) -> list[Anomaly]:
    """The symbol's anomalies acknowledged with a reason in the TUNING_DAYS before `end` (default: now)."""
    since = (end or datetime.now(UTC)) - timedelta(days=TUNING_DAYS)
    hits = es.search(
        index=indices.anomalies,
        size=MAX_LABELLED,
        ignore_unavailable=True,
        query={
            "bool": {
                "filter": [
                    {"term": {"symbol": symbol}},
                    {"terms": {"ack_reason": [r.value for r in AckReason]}},
                    {"range": {"timestamp": {"gte": iso(since), **({"lt": iso(end)} if end else {})}}},
                ]
            }
        },
    )["hits"]["hits"]
    return [Anomaly.model_validate(hit["_source"]) for hit in hits]
