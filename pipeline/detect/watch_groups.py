"""Personal watches inside detection: grouped by rule and window with their thresholds sorted, so a tick costs one
reading per group (a bisection finds every watch it reaches), not one check per watch."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from pipeline.detect.rules import Crossing, Rule, WindowChecks
from pipeline.detect.window import Episode
from pipeline.schema import RuleName


class WatchGroups:
    """Personal watches grouped by rule and window, thresholds sorted: at each tick one measure per group tells
    every watch of it that holds (a bisection), so the cost grows with the groups, not the watches."""

    def __init__(self, watches: list[Rule]) -> None:
        self.by_key = {rule.key: rule for rule in watches if rule.enabled}
        grouped: dict[tuple[RuleName, int], list[Rule]] = {}
        for rule in self.by_key.values():
            grouped.setdefault((rule.name, rule.window_ms), []).append(rule)
        self.groups = [
            (name, window_ms, [r.threshold_pct for r in ordered], ordered)
            for (name, window_ms), rules in grouped.items()
            for ordered in [sorted(rules, key=lambda r: r.threshold_pct)]
        ]

    def hits(self, checks: WindowChecks, i: int, episodes: Mapping[str, Episode]) -> dict[str, Crossing | None]:
        found: dict[str, Crossing | None] = {}
        for name, window_ms, thresholds, rules in self.groups:
            measured = checks.measure(name, window_ms, i)
            if measured is None:
                continue
            holding = bisect.bisect_right(thresholds, measured.size)
            if holding:
                crossing = checks.crossing(window_ms, i, measured)
                found.update((rule.key, crossing) for rule in rules[:holding])
        for key in episodes:
            if key not in found:
                found[key] = None  # an episode under way that does not hold at this tick
        return found
