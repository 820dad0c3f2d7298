"""The ``logs.sources`` settings: each type takes only its own keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, parse_config


def sources(text: str) -> str:
    return "logs:\n  sources:\n" + text


def errors(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(sources(text), base_dir=Path("/etc/mailprobe"))
    return "\n".join(str(issue) for issue in caught.value.issues)


def test_every_kind_of_source_with_its_settings() -> None:
    config = parse_config(
        sources(
            "    - {type: file, path: mx.log, rotate_wait: 0.5, start: beginning}\n"
            "    - {type: file, path: /var/log/srs.log, name: srs, max_line_bytes: 4096}\n"
            "    - {type: journald, units: [postfix@-.service], matches: ['SYSLOG_FACILITY=2']}\n"
            "    - {type: stdin}\n"
        ),
        base_dir=Path("/etc/mailprobe"),
    )
    mx, srs, journal, stdin = config.logs.sources
    assert mx.path == Path("/etc/mailprobe/mx.log")  # relative to the config file
    assert mx.state_key == "file:/etc/mailprobe/mx.log"
    assert (mx.rotate_wait, mx.start, mx.poll_interval) == (0.5, "beginning", 0.25)
    assert srs.state_key == "srs" and srs.max_line_bytes == 4096
    assert journal.state_key == "journald" and journal.units == ["postfix@-.service"]
    assert stdin.state_key == "stdin"


def test_keys_of_another_source_type_are_errors() -> None:
    found = errors(
        "    - {type: journald, path: /var/log/mail.log, poll_interval: 1}\n"
        "    - {type: file, path: /var/log/mail.log, units: [postfix.service]}\n"
        "    - {type: stdin, start: end}\n"
    )
    assert "logs.sources[0] (line 3): path, poll_interval: not for a journald source" in found
    assert "logs.sources[1].units (line 4): not for a file source" in found
    assert "logs.sources[2].start (line 5): stdin is always read from its start" in found


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{type: file}", "a file source needs 'path'"),
        ("{type: file, path: a, max_line_bytes: 10}", "greater than or equal to 256"),
        ("{type: file, path: a, poll_interval: 0}", "greater than 0"),
        ("{type: journald, matches: [postfix]}", "'postfix' is not FIELD=value or +"),
        ("{type: file, path: a, rotate_wiat: 1}", "rotate_wiat"),
    ],
)
def test_bad_values_are_named(entry: str, message: str) -> None:
    assert message in errors(f"    - {entry}\n")


def test_two_sources_sharing_a_position_must_be_named_apart() -> None:
    found = errors("    - {type: journald}\n    - {type: journald, units: [postfix.service]}\n")
    assert "journald given twice; give each a distinct 'name'" in found
    parse_config(sources("    - {type: journald}\n    - {type: journald, name: other}\n"))
    assert "only one stdin" in errors("    - {type: stdin}\n    - {type: stdin, name: b}\n")
