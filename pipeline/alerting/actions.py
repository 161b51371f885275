"""The ids of the interactive elements on alert messages: built by the pipeline, handled by the Slack bot.

They live in the core because both sides need them and front-ends never import each other. A value never
appears as a string literal twice.
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.schema import AckReason


class AlertAction(StrEnum):
    """`action_id`s of the alert message's elements; the element's value carries what it acts on."""

    ACKNOWLEDGE = "alert.acknowledge"  # button, value: anomaly id
    ACKNOWLEDGE_AS = "alert.acknowledge_as"  # overflow menu, option values: reason_value(anomaly id, AckReason)
    MUTE = "alert.mute"  # static select, option values: MuteChoice.value_for(anomaly id)
    HISTORY = "alert.history"  # button, value: anomaly id
    ADJUST_THRESHOLD = "alert.adjust_threshold"  # button, value: anomaly id
    STORM_ACKNOWLEDGE_ALL = "storm.acknowledge_all"  # button, value: storm id
    STORM_MUTE_ALL = "storm.mute_all"  # button, value: storm id


class WatchAction(StrEnum):
    """`action_id`s on personal watch DMs and the App Home tab."""

    ACKNOWLEDGE = "watch.acknowledge"  # button, value: anomaly id (a watch alert's)
    UNWATCH = "watch.unwatch"  # button on a DM, value: anomaly id (stops the watch that raised it)
    REMOVE = "home.unwatch"  # button in App Home, value: "target|rule"
    UNMUTE = "home.unmute"  # button in App Home, value: the muted target


class MuteChoice(StrEnum):
    """The Mute menu's options; `custom` opens a modal with a duration and a reason."""

    ONE_HOUR = "1h"
    UNTIL_TOMORROW = "tomorrow"
    CUSTOM = "custom"

    def value_for(self, anomaly_id: str) -> str:
        return f"{anomaly_id}|{self.value}"

    @staticmethod
    def parse(value: str) -> tuple[str, MuteChoice]:
        """`anomaly-id|1h` -> (anomaly id, choice); raises ValueError on anything else."""
        anomaly_id, choice = _split(value)
        return anomaly_id, MuteChoice(choice)


def reason_value(anomaly_id: str, reason: AckReason) -> str:
    """An "Acknowledge as …" option's value."""
    return f"{anomaly_id}|{reason.value}"


def parse_reason(value: str) -> tuple[str, AckReason]:
    """`anomaly-id|too_sensitive` -> (anomaly id, reason); raises ValueError on anything else."""
    anomaly_id, reason = _split(value)
    return anomaly_id, AckReason(reason)


def _split(value: str) -> tuple[str, str]:
    anomaly_id, _, choice = value.rpartition("|")
    if not anomaly_id:
        raise ValueError(f"not an option value: {value!r}")
    return anomaly_id, choice
