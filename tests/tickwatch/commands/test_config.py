"""The configuration reference is generated from the settings and kept in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from pipeline.settings import Settings
from tickwatch.commands.config import reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_every_setting_says_what_it_is_for():
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_docs_configuration_is_the_generated_reference():
    assert DOC.read_text() == reference(), "run: tickwatch config docs > docs/configuration.md"


def test_every_setting_is_in_the_reference():
    for name in Settings.model_fields:
        variable = name.upper() if name.startswith("slack_") and name.endswith(("token", "secret")) else name
        assert variable.upper() in reference()
