"""`mailprobe config check` and the loader: every bad key named, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parent.parent


def config_check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def test_example_config_is_valid() -> None:
    done = config_check(REPO / "examples" / "mailprobe.yml")
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_bad_config_names_every_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "defualts:\n"
        "  interval: 30\n"
        "smtp:\n"
        "  targets:\n"
        "    - name: mx\n"
        "      host: mx.example.test\n"
        "    - name: sub\n"
        "      host: sub.example.test\n"
        "      port: twenty-five\n"
        "canary:\n"
        "  mailboxes:\n"
        "  - name: world\n"
        "    host: imap.example.test\n"
        "    username: canary\n"
        "    password_file: missing-secret\n"
    )
    done = config_check(bad)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert "defualts (line 1): unknown key" in done.stderr
    assert "smtp.targets[1].port (line 9)" in done.stderr
    assert "canary.mailboxes[0].password_file (line 15)" in done.stderr
    assert "missing-secret does not exist" in done.stderr


def test_secret_values_are_never_printed(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-very-secret\n")
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "canary:\n  mailboxes: [{name: m, host: h, username: u, password_file: pw, port: 99999}]\n"
    )
    done = config_check(cfg)
    assert done.returncode == 3
    assert "canary.mailboxes[0].port" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_inline_password_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("canary:\n  mailboxes: [{name: m, host: h, username: u, password: x}]\n")
    paths = {issue.path for issue in caught.value.issues}
    assert "canary.mailboxes[0].password" in paths


def test_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "canary:\n  mailboxes: [{name: m, host: h, username: u, password_env: MAILPROBE_TEST_PW}]\n"
    )
    with pytest.raises(ConfigError):
        parse_config(text)
    monkeypatch.setenv("MAILPROBE_TEST_PW", "x")
    assert parse_config(text).canary.mailboxes[0].name == "m"


def test_invalid_yaml_reports_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("smtp:\n  targets: [\n")
    assert caught.value.issues[0].line is not None
    assert "invalid YAML" in caught.value.issues[0].message


def test_unreadable_file_exits_3(tmp_path: Path) -> None:
    done = config_check(tmp_path / "nope.yml")
    assert done.returncode == 3
    assert f"no config file at {tmp_path / 'nope.yml'}" in done.stderr
    folder = config_check(tmp_path)
    assert folder.returncode == 3
    assert f"{tmp_path} (given with --config) is a folder: name the config file" in folder.stderr


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "env.yml"
    cfg.write_text("defaults: {interval: 5}\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "config", "check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"MAILPROBE_CONFIG": str(cfg), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert str(cfg) in done.stdout


def test_smtp_target_settings_are_checked_against_each_other() -> None:
    from monitor.config import ConfigError, parse_config

    cases = {
        "smtp: {targets: [{name: a}]}": "give exactly one of 'host' or 'mx_of'",
        "smtp: {targets: [{name: a, host: h, mx_of: d}]}": "give exactly one of 'host' or 'mx_of'",
        "smtp: {targets: [{name: a, mx_of: example.org}]}": "'mx_of' needs at least one",
        "smtp: {targets: [{name: a, host: h, dane: required}]}": "'dane: required' needs",
        "smtp: {targets: [{name: a, host: 192.0.2.1, families: [ipv6]}]}": "is an ipv4 address",
        "smtp: {targets: [{name: a, host: h, phase_timeout: 10}]}": "must be below",
        "smtp: {targets: [{name: a, host: h}, {name: a, host: i}]}": "used twice",
        "smtp: {modules: {m: {timeout: 5, phase_timeout: 5}}}": "must be below",
    }
    for text, words in cases.items():
        try:
            parse_config(text)
        except ConfigError as error:
            assert words in "; ".join(str(i) for i in error.issues), (text, error.issues)
        else:
            raise AssertionError(f"accepted: {text}")
    ok = parse_config(
        "dns: {resolvers: [{address: 127.0.0.1}]}\n"
        "smtp: {targets: [{name: a, mx_of: example.org, dane: required, phase_timeout: 5}]}"
    )
    assert ok.smtp.targets[0].probed_families == ("ipv4", "ipv6")
    assert parse_config("smtp: {targets: [{name: a, host: '::1'}]}").smtp.targets[
        0
    ].probed_families == ("ipv6",)
