"""The week's noisiest rules for Friday's digest: which (symbol, rule) pairs alerted most, how many of their
alerts people marked too sensitive, and what acknowledgements suggest (pipeline.detect.tuning)."""

from __future__ import annotations

from datetime import datetime, timedelta

from elasticsearch import Elasticsearch
from pydantic import BaseModel

from pipeline import store
from pipeline.detect import tuning
from pipeline.schema import AckReason, iso


class NoisyRule(BaseModel):
    """One of the week's noisiest rules (Friday's digest) and what acknowledgements suggest for it."""

    symbol: str
    rule: str
    alerts: int  # in the 7 days to the digest's end
    too_sensitive: int  # of those, acknowledged as too sensitive
    suggested: float | None  # pipeline.detect.tuning over the last 30 days' labels; None: nothing to suggest


NOISIEST = 5


def noisiest_rules(es: Elasticsearch, indices: store.Indices, end: datetime) -> list[NoisyRule]:
    """The NOISIEST (symbol, rule) pairs by alerts in the week to `end`, with the share acknowledged as too
    sensitive and the threshold their labels suggest."""
    result = es.search(
        index=indices.anomalies,
        size=0,
        ignore_unavailable=True,
        query={"range": {"timestamp": {"gte": iso(end - timedelta(days=7)), "lt": iso(end)}}},
        aggs={
            "symbols": {
                "terms": {"field": "symbol", "size": 1000},
                "aggs": {
                    "rules": {
                        "terms": {"field": "rule", "size": 10},
                        "aggs": {"too_sensitive": {"filter": {"term": {"ack_reason": AckReason.TOO_SENSITIVE.value}}}},
                    }
                },
            }
        },
    )
    buckets = result.get("aggregations", {}).get("symbols", {"buckets": []})["buckets"]
    pairs = [
        (s["key"], r["key"], r["doc_count"], r["too_sensitive"]["doc_count"])
        for s in buckets
        for r in s["rules"]["buckets"]
    ]
    found = []
    for symbol, rule, alerts, too_sensitive in sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:NOISIEST]:
        deserved, undeserved = tuning.split(tuning.labelled(es, indices, symbol, end=end), rule)
        found.append(
            NoisyRule(
                symbol=symbol,
                rule=rule,
                alerts=alerts,
                too_sensitive=too_sensitive,
                suggested=tuning.suggested(rule, deserved, undeserved),
            )
        )
    return found
