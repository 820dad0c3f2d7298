"""The logs section's parsing keys: strict, and turned into the exporter's settings."""

from __future__ import annotations

import pytest

from exporters.postfix_logs.reasons import DEFAULT_REASONS, ReasonClassifier, ReasonRule
from monitor.config import ConfigError, parse_config
from monitor.logs import log_settings

YAML = """
logs:
  services:
    postfix-mx: mx
    postfix-mx/submission: submission
  domains: [example.org]
  mtail_compat: true
  reasons:
    - reason: srs_down
      pattern: 'sender_canonical_maps map lookup problem'
    - reason: greylist_custom
      pattern: '(?i)come back later'
  tracker:
    max_messages: 5000
    ttl: 3600
"""


def test_logs_keys_become_settings() -> None:
    settings = log_settings(parse_config(YAML).logs)
    assert settings.services == {"postfix-mx": "mx", "postfix-mx/submission": "submission"}
    assert settings.mtail_compat is True
    assert (settings.tracker_max_messages, settings.tracker_ttl_seconds) == (5000, 3600.0)
    classify = ReasonClassifier(settings.reasons)
    assert classify("4.7.1 Greylisted, please come back later") == "greylist_custom"  # first
    assert classify("450 4.7.1 Greylisted for 5 minutes") == "greylist"  # then the defaults
    assert settings.reasons[2:] == DEFAULT_REASONS


@pytest.mark.parametrize(
    ("yaml", "where"),
    [
        (
            "logs:\n  reasons:\n    - reason: x\n      pattern: '(unclosed'\n",
            "logs.reasons[0].pattern",
        ),
        ("logs:\n  reasons:\n    - reason: Bad Name\n      pattern: x\n", "logs.reasons[0].reason"),
        ("logs:\n  tracker:\n    max_messages: 10\n", "logs.tracker.max_messages"),
        ("logs:\n  services:\n    postfix: 'm x'\n", "logs.services"),
        ("logs:\n  mtail: true\n", "logs.mtail"),
    ],
)
def test_bad_logs_keys_are_named(yaml: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml)
    assert [issue.path for issue in caught.value.issues] == [where]


def test_reason_answers_are_shared_across_digits_only_when_no_rule_reads_digits() -> None:
    folded = ReasonClassifier(DEFAULT_REASONS)
    assert folded("Client host rejected: cannot find your hostname, [192.0.2.1]") == "dns"
    assert folded("Client host rejected: cannot find your hostname, [198.51.100.7]") == "dns"
    exact = ReasonClassifier((ReasonRule("mailbox_full", r"5\.2\.2"), *DEFAULT_REASONS))
    assert exact("host said: 552 5.2.2 over quota") == "mailbox_full"
    assert exact("host said: 552 5.2.3 over quota") == "quota"
