"""Every id the bot's Slack surfaces use, in one place: commands, modal callbacks, block and action ids.

The alert message's own action ids are the pipeline's (`pipeline.alert_actions`), since it builds them.
"""

from __future__ import annotations

from enum import StrEnum


class Command(StrEnum):
    """Slash commands; `bot/manifest.yml` declares exactly these (a test keeps them in step)."""

    PRICE = "/price"
    ANOMALIES = "/anomalies"
    MUTE = "/mute"
    UNMUTE = "/unmute"
    MUTES = "/mutes"
    GROUP = "/group"
    THRESHOLD = "/threshold"
    WATCH = "/watch"
    WATCHES = "/watches"
    UNWATCH = "/unwatch"


class SuggestionAction(StrEnum):
    """Buttons on a `/threshold SYMBOL suggest` answer; the value is `SYMBOL|rule|threshold`."""

    APPLY = "threshold.apply_suggestion"


class ModalCallback(StrEnum):
    MUTE = "modal.mute"
    THRESHOLD = "modal.threshold"


class BlockId(StrEnum):
    """Input and section block ids inside modals (also the keys of `view.state.values`)."""

    DURATION = "mute.duration"
    REASON = "mute.reason"
    THRESHOLD = "threshold.pct"
    WINDOW = "threshold.window"
    PREVIEW = "threshold.preview"


class ModalAction(StrEnum):
    """Action ids of elements inside modals."""

    DURATION = "duration"
    REASON = "reason"
    THRESHOLD = "threshold_pct"
    WINDOW = "window"
    PREVIEW = "threshold.preview"
