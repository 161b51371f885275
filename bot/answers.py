"""What each command and button answers: blocking core calls composed into a `Message`.

Plain functions of a `Backend`, run off the event loop (`Backend.run`) after the request is acknowledged.
Bad input from a user comes back as a message saying what to do, never as an exception.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Unpack

from bot.backend import Backend
from bot.messages import (
    MAX_LISTED,
    Message,
    control_error_message,
    group_changed_message,
    group_message,
    groups_message,
    muted_message,
    mutes_message,
    no_ticks_message,
    not_muted_message,
    preview_message,
    price_message,
    rule_changed_message,
    rules_message,
    suggestions_message,
    unknown_symbol_message,
    unmuted_message,
)
from bot.parsing import GroupRequest, MuteRequest, ThresholdRequest
from bot.texts import COMMANDS, render
from pipeline import calendars, history
from pipeline.audit import Actor
from pipeline.detect import backtest, tuning
from pipeline.groups import is_group
from pipeline.history import UnknownSymbol
from pipeline.rule_words import RuleChange
from pipeline.schema import Anomaly, RuleName

MAX_CHART_MARKS = 100  # anomalies marked on a chart (newest first)


def price_answer(
    b: Backend, symbol: str, window: timedelta, *, end: datetime | None = None, context: str | None = None
) -> Message:
    """`/price`: the window ending at `end` (default: the symbol's last tick) and the anomalies in it.

    Two rounds of queries, not three: the last tick and the symbol's newest anomalies are read at once
    (anomalies never postdate the last tick, so the window's are the newest ones), then the window.
    """
    with ThreadPoolExecutor(2) as pool:
        last_tick = pool.submit(history.last_tick, b.es, b.indices, symbol)
        newest = pool.submit(
            history.anomalies_page,
            b.es,
            b.indices,
            symbol=symbol,
            end=end,
            start=end - window if end else None,
            limit=MAX_LISTED + 1,
        )
        last = last_tick.result()
        if last is None:
            return unknown_symbol_message(UnknownSymbol(symbol, history.closest_symbols(b.es, b.indices, symbol)))
        end = end or last.timestamp
        summary = history.window_summary(b.es, b.indices, symbol, window, end=end)
        anomalies = [a for a in newest.result().items if end - window <= a.timestamp <= end]
    if summary is None:
        return no_ticks_message(symbol, window, end)
    market = calendars.for_patterns(b.settings.calendars).session_of(summary.symbol, datetime.now(UTC)).describe()
    listed, more = anomalies[:MAX_LISTED], len(anomalies) > MAX_LISTED
    return price_message(summary, window, listed, more=more, context=context, market=market)


CHARTS_MISSING = "Charts need matplotlib, which this installation left out: install `tickwatch[charts]`."


def charts_installed() -> bool:
    """Whether the `charts` extra (matplotlib) is installed: only `/price --chart` needs it."""
    return importlib.util.find_spec("matplotlib") is not None


def price_chart(b: Backend, symbol: str, window: timedelta) -> tuple[bytes, str] | None:
    """`/price --chart`: (PNG, title) of the window up to the last tick, its anomalies marked; None without
    ticks (the text answer has said so). Needs `charts_installed()`."""
    from pipeline import charts  # matplotlib is the optional `charts` extra

    last = history.last_tick(b.es, b.indices, symbol)
    if last is None:
        return None
    interval = charts.bar_interval(window)
    end = last.timestamp + timedelta(milliseconds=1)  # ohlc's end is exclusive
    bars = history.ohlc(b.es, b.indices, symbol, end - window, end, interval)
    if not bars:
        return None
    marked = history.anomalies_page(
        b.es, b.indices, symbol=symbol, start=end - window, end=end, limit=MAX_CHART_MARKS
    ).items
    title = render(COMMANDS, "chart_title", symbol, window, interval)
    return charts.price_chart(title, bars, marks=[(a.timestamp, a.price) for a in marked]), title


def recent_anomalies(b: Backend, symbol: str | None, window: timedelta) -> tuple[list[Anomaly], bool] | Message:
    """`/anomalies`: newest first within the window up to now, and whether there were more than listed."""
    if symbol is not None:
        try:
            history.require_symbol(b.es, b.indices, symbol)
        except UnknownSymbol as error:
            return unknown_symbol_message(error)
    page = history.anomalies_page(b.es, b.indices, symbol=symbol, start=datetime.now(UTC) - window, limit=MAX_LISTED)
    return page.items, page.next_cursor is not None


def mute(b: Backend, request: MuteRequest, who: Actor) -> tuple[Message, bool]:
    """(answer, whether anything changed)."""
    try:
        _require_target(b, request.symbol)
        change = b.controls.mute_as(request.symbol, who, request.ask)
    except UnknownSymbol as error:
        return unknown_symbol_message(error), False
    except ValueError as error:
        return control_error_message(str(error)), False
    return muted_message(change, who.id or who.name), True


def mute_until(b: Backend, symbol: str, who: Actor, until: datetime, reason: str = "") -> tuple[Message, bool]:
    try:
        change = b.controls.mute(symbol, who, until=until, reason=reason)
    except ValueError as error:
        return control_error_message(str(error)), False
    return muted_message(change, who.id or who.name), True


def unmute(b: Backend, symbol: str, who: Actor) -> Message:
    """Unmuting needs no stored ticks (a mute may outlive them); a typo that was never muted gets suggestions."""
    if b.controls.unmute(symbol, who):
        return unmuted_message(symbol, who.id or who.name)
    try:
        _require_target(b, symbol)
    except UnknownSymbol as error:
        return unknown_symbol_message(error)
    except ValueError as error:
        return control_error_message(str(error))
    return not_muted_message(symbol)


def mutes(b: Backend) -> Message:
    return mutes_message(b.controls.mutes(), b.controls.windows())


def groups(b: Backend, request: GroupRequest, who: Actor) -> tuple[Message, bool]:
    """`/group`: list, show, or change a group; (answer, whether anything changed)."""
    if request.name is None:
        return groups_message(list(b.controls.groups().values())), False
    try:
        if request.action == "show":
            group = b.controls.group(request.name)
            if group is None:
                raise ValueError(f"there is no group {request.name}; make it with /group {request.name} add NVDA AMD")
            return group_message(
                group, b.controls.rules(group.target).values(), b.controls.mute_of(group.target)
            ), False
        if request.action == "delete":
            change = b.controls.delete_group(request.name, who)
        else:
            change = b.controls.change_group(request.name, who, **{request.action: request.members})
    except ValueError as error:
        return control_error_message(str(error)), False
    return group_changed_message(change, who.id or who.name), True


def _require_target(b: Backend, target: str) -> None:
    """A symbol must have stored ticks (a typo must not mute nothing); a group must exist (Controls checks)."""
    if not is_group(target):
        history.require_symbol(b.es, b.indices, target)


def rules(b: Backend, symbol: str) -> Message:
    try:
        _require_target(b, symbol)
        views = b.controls.rules(symbol).values()
    except UnknownSymbol as error:
        return unknown_symbol_message(error)
    except ValueError as error:
        return control_error_message(str(error))
    return rules_message(symbol, views)


def set_threshold(b: Backend, request: ThresholdRequest, who: Actor) -> tuple[Message, bool]:
    """Save (or reset) a rule; (answer, whether anything changed)."""
    try:
        _require_target(b, request.symbol)
        if request.reset:
            change = b.controls.reset_rule(request.symbol, request.rule, who)
        else:
            change = b.controls.set_rule(request.symbol, request.rule, who, **request.change)
    except UnknownSymbol as error:
        return unknown_symbol_message(error), False
    except ValueError as error:
        return control_error_message(str(error)), False
    return rule_changed_message(change, who.id or who.name), True


def suggest_thresholds(b: Backend, symbol: str) -> Message:
    """`/threshold SYMBOL suggest`: per rule with labelled alerts, what the acknowledgements suggest."""
    try:
        history.require_symbol(b.es, b.indices, symbol)
    except UnknownSymbol as error:
        return unknown_symbol_message(error)
    return suggestions_message(symbol, tuning.suggest(b.es, b.indices, b.controls, symbol))


def preview_threshold(b: Backend, request: ThresholdRequest) -> Message:
    """`--preview`: the candidate and the current rule replayed over the last 7 days; nothing saved."""
    try:
        if is_group(request.symbol):
            raise ValueError("a preview replays one symbol's ticks: preview a member of the group")
        history.require_symbol(b.es, b.indices, request.symbol)
        result = preview(b, request.symbol, request.rule, **request.change)
    except UnknownSymbol as error:
        return unknown_symbol_message(error)
    except ValueError as error:
        return control_error_message(str(error))
    return preview_message(result)


def preview(b: Backend, symbol: str, rule: RuleName, **change: Unpack[RuleChange]) -> backtest.Preview:
    """The rule with `change` and the current one, replayed over the last days (pipeline.detect.backtest)."""
    return backtest.preview(b.es, b.indices, b.controls, symbol, rule, **change)
