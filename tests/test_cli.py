"""The command line as users meet it: help with examples, clear errors for bad input."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tickwatch.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [["stack", "up"], ["worker"], ["bridge"], ["generate"], ["demo"], ["bench"],
                                     ["retention"], ["stack", "status"]])
def test_every_command_has_help(command: list[str]):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_generate_examples_are_in_the_help():
    assert "drop:TSLA:8%:90s@10m" in runner.invoke(app, ["generate", "--help"], terminal_width=200).output


@pytest.mark.parametrize(("args", "message"), [
    (["--inject", "crash:TSLA"], "expected kind:symbol:pct%:duration@offset"),
    (["--csv", "no-equals-sign.csv"], "--csv takes SYMBOL=path.csv"),
    (["--duration", "soon"], "soon"),
])
def test_generate_rejects_bad_input_before_touching_kafka(args: list[str], message: str):
    result = runner.invoke(app, ["generate", *args], terminal_width=200)
    assert result.exit_code == 2
    assert message in result.output
