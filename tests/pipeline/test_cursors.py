"""Page cursors: what one page hands out the next takes back; anything else is refused with one message."""

from __future__ import annotations

import pytest

from pipeline import cursors


def test_a_cursor_round_trips_its_position():
    position = [1767639244.123456, "sym493-drop-dde4"]
    assert cursors.decode(cursors.encode(position)) == position
    assert cursors.decode(None) is None and cursors.decode("") is None


@pytest.mark.parametrize("forged", ["nan", "1767639244.5", "%%%", "e30", "W10", "WzFlNDAwXQ", "W251bGxd"])
def test_anything_else_is_refused(forged: str):  # nan, a bare number, bad base64, {}, [], [1e400], [null]
    with pytest.raises(ValueError, match="not one this API handed out"):
        cursors.decode(forged)
