"""How every `tickwatch` command fails: one line saying what is wrong and what to do next, a non-zero exit,
no traceback. `tickwatch --debug …` or TICKWATCH_DEBUG=1 shows the traceback instead.

It wraps the whole Typer app (see `tickwatch.__main__.main`), so commands added anywhere in the CLI get the
same treatment without handling these errors themselves.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.error import URLError

from rich.console import Console
from rich.text import Text

DEBUG_ENV = "TICKWATCH_DEBUG"
STACK_UP = "is the stack up? `tickwatch stack up`"
EXIT_INPUT = 2  # like Click's usage errors: the command line, a file or a setting needs fixing
EXIT_FAILURE = 1


@dataclass(frozen=True)
class Failure:
    message: str
    exit_code: int = EXIT_FAILURE


def debug_requested() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _setting(name: str) -> str:
    """A setting for a message, even when the settings themselves are invalid."""
    from pydantic import ValidationError

    from pipeline.settings import Settings, get_settings

    try:
        return str(getattr(get_settings(), name))
    except ValidationError:
        return os.environ.get(f"TICKWATCH_{name.upper()}", str(Settings.model_fields[name].default))


def _answers(host_port: str, timeout: float = 1.0) -> bool:
    host, _, port = host_port.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _kafka(error: Exception) -> Failure:
    bootstrap = _setting("kafka_bootstrap")
    if not _answers(bootstrap):
        return Failure(f"Kafka at {bootstrap} is not reachable — {STACK_UP}")
    return Failure(
        f"Kafka at {bootstrap} answered but failed: {error} — check `tickwatch stack status` "
        "and that the topic exists (`tickwatch stack init`)"
    )


SECRET_SETTINGS = {
    "api_tokens",
    "secret_key",
    "secret_keys",
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
}


def _settings_error(error: Exception) -> Failure:
    from pydantic import ValidationError

    from pipeline.settings import Settings

    problems = []
    for item in cast(ValidationError, error).errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:
            problems.append(message)
            continue
        name, *inside = item["loc"]
        field = Settings.model_fields.get(str(name))
        alias = getattr(field.validation_alias, "choices", None) if field else None
        variable = (str(alias[0]) if alias else f"TICKWATCH_{str(name).upper()}") + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in inside
        )
        shown = "input" in item and name not in SECRET_SETTINGS  # never print a token or a key
        problems.append(f"{variable}={item['input']}: {message}" if shown else f"{variable}: {message}")
    return Failure(
        f"invalid setting {'; '.join(problems)} — fix it in the environment or .env (see docs/configuration.md)",
        EXIT_INPUT,
    )


def _rules() -> list[tuple[tuple[type[BaseException], ...], Callable[[Exception], Failure]]]:
    """(exception types, how to explain them), first match wins. Imported here, when something failed,
    so that a working command never pays for importing every client library."""
    from elastic_transport import ConnectionError as ESConnectionError
    from elastic_transport import ConnectionTimeout as ESConnectionTimeout
    from kafka.errors import KafkaError
    from kombu.exceptions import OperationalError as BrokerError
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from slack_sdk.errors import SlackApiError

    from pipeline.digest.posting import DigestBusy
    from pipeline.history import UnknownSymbol
    from pipeline.ingest.publish import DeliveryError, MissingTopic
    from pipeline.webhooks.encryption import SecretKeyError

    def redis(_: Exception) -> Failure:
        return Failure(f"Redis at {_setting('redis_url')} is not reachable — {STACK_UP}")

    def elasticsearch(_: Exception) -> Failure:
        return Failure(f"Elasticsearch at {_setting('es_url')} is not reachable — {STACK_UP}")

    def unparsable_setting(error: Exception) -> Failure:
        from pipeline.settings import Settings

        field = re.search(r'field "(\w+)"', str(error))
        name = field.group(1) if field else "?"
        info = Settings.model_fields.get(name)
        expected = f" ({info.description})" if info and info.description else ""
        return Failure(
            f"invalid setting TICKWATCH_{name.upper()}: not a value it takes{expected} — fix it in the "
            "environment or .env (see docs/configuration.md)",
            EXIT_INPUT,
        )

    def settings_or_unexpected(error: Exception) -> Failure:
        return _settings_error(error) if getattr(error, "title", "") == "Settings" else unexpected(error)

    def missing_file(error: Exception) -> Failure:
        os_error = cast(OSError, error)
        return Failure(f"{os_error.filename}: {os_error.strerror} — check the path", EXIT_INPUT)

    def delivery(error: Exception) -> Failure:
        return Failure(f"{error} — check `tickwatch stack status`")

    def unknown_symbol(error: Exception) -> Failure:
        hint = (
            ""
            if cast(UnknownSymbol, error).suggestions
            else " — check the spelling (a symbol is known once a tick of it is stored)"
        )
        return Failure(f"{error}{hint}", EXIT_INPUT)

    def slack_unreachable(error: Exception) -> Failure:
        return Failure(
            f"Slack at {_setting('slack_api_url')} is not reachable ({cast(URLError, error).reason}) — "
            "check TICKWATCH_SLACK_API_URL and the network"
        )

    def slack_refused(error: Exception) -> Failure:
        answer = cast(SlackApiError, error).response
        method = answer.api_url.rsplit("/", 1)[-1]
        return Failure(
            f"Slack refused {method}: {answer.get('error') or f'HTTP {answer.status_code}'} — check "
            "SLACK_BOT_TOKEN, and that the bot is invited to the channel"
        )

    return [
        ((KafkaError,), _kafka),
        ((RedisConnectionError, RedisTimeoutError, BrokerError), redis),
        ((ESConnectionError, ESConnectionTimeout), elasticsearch),
        ((ValidationError,), settings_or_unexpected),
        ((SettingsError,), unparsable_setting),
        ((FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError), missing_file),
        ((DeliveryError,), delivery),
        ((MissingTopic,), lambda error: Failure(str(error), EXIT_INPUT)),
        ((UnknownSymbol,), unknown_symbol),
        ((DigestBusy,), lambda error: Failure(str(error))),  # says what is going on and when to try again
        ((URLError,), slack_unreachable),  # the Slack Web API is the one HTTP client that raises it
        ((SlackApiError,), slack_refused),
        ((SecretKeyError,), lambda error: Failure(str(error), EXIT_INPUT)),  # says what to fix
    ]


def unexpected(error: Exception) -> Failure:
    return Failure(
        f"unexpected {type(error).__name__}: {error} — run again with --debug (or {DEBUG_ENV}=1) to see the traceback"
    )


def explain(error: Exception) -> Failure:
    """The one line a user reads when a command fails with `error`."""
    for types, describe in _rules():
        if isinstance(error, types):
            return describe(error)
    return unexpected(error)


def run(app: Callable[[], object]) -> None:
    """Runs the CLI app; an exception becomes one red line on stderr and a non-zero exit."""
    try:
        app()
    except KeyboardInterrupt:
        if debug_requested():
            raise
        sys.exit(130)
    except Exception as error:
        if debug_requested():
            raise
        try:
            failure = explain(error)
        except Exception:  # explaining must never hide the error behind another traceback
            failure = unexpected(error)
        Console(stderr=True, soft_wrap=True).print(Text(f"✘ {failure.message}", style="red"))
        sys.exit(failure.exit_code)
