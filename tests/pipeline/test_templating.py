"""What reaches Slack from outside the code is escaped; what the code writes as Slack syntax is not."""

from __future__ import annotations

import pytest

from pipeline.alerting.messages import webhook_disabled_text, who
from pipeline.durations import parse_duration, parse_seconds
from pipeline.templating import environment, escape
from pipeline.webhooks.ssrf import host_of


def test_escape_turns_the_three_special_characters_into_entities():
    assert escape("<!channel> a & b <https://x|y>") == "&lt;!channel&gt; a &amp; b &lt;https://x|y&gt;"


def test_templates_escape_printed_values_but_not_the_codes_markup():
    env = environment({"who": who})
    rendered = env.from_string("{{ reason }} by {{ 'U012AB3CD'|who }} and {{ '<@evil>'|who }}").render(
        reason="<!here> <https://evil.example|click>"
    )
    assert rendered == "&lt;!here&gt; &lt;https://evil.example|click&gt; by <@U012AB3CD> and &lt;@evil&gt;"


def test_a_disabled_webhook_notice_names_the_host_only():
    text = webhook_disabled_text(host_of("https://user:pw@hooks.example.com/in/T0K3N?key=s3cret"), "sub_1", "410")
    assert "hooks.example.com" in text and not any(secret in text for secret in ("T0K3N", "s3cret", "pw"))


@pytest.mark.parametrize("text", ["99999999999d", "1e400s", "9" * 400 + "w"])
def test_absurd_durations_are_refused_with_a_reason_not_an_overflow(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_long_but_sane_durations_still_parse():
    assert parse_seconds("90d") == 90 * 86_400
