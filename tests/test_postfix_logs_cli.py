"""``mailprobe logs``: the one-shot report, tracing, filters and exit codes."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.maillog import generate
from exporters.postfix_logs.settings import LogSettings
from monitor.cli import main
from monitor.logs.engine import Options, analyse
from monitor.logs.reader import split
from monitor.logs.report import build
from tests.shared_data import require
from tests.test_postfix_tracker import chain

ROOT = Path(__file__).resolve().parents[1]


def mailprobe(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "logs", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "MAILPROBE_CONFIG"} | (env or {}),
        check=False,
    )


def report(*args: str, stdin: bytes | None = None) -> dict[str, Any]:
    """``mailprobe logs --format json ARGS`` in this process (quicker than a subprocess)."""
    out = io.StringIO()
    saved = sys.stdin, sys.stdout
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""))
    sys.stdout = out
    try:
        code = main(["logs", "--format", "json", *args])
    finally:
        sys.stdin, sys.stdout = saved
    assert code == 0
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILPROBE_CONFIG", raising=False)


def test_json_line_accounting_and_totals() -> None:
    source = require("postfix", "sergeymakinen-postfix_exporter_mail.log")
    lines = source.read_text().splitlines()
    comments = sum(line.startswith("#") for line in lines)  # malformed lines too
    data = report(str(source))
    assert data["lines"] == {
        "total": len(lines),
        "postfix_lines": 52,
        "unsupported": 10,
        "malformed": 7 + comments,
        "foreign": 0,
        "truncated": 0,
        "outside_window": 0,
    }
    assert data["messages"]["bounced"] == 2
    assert data["smtpd"]["sasl_failures"] == {"LOGIN": 1}
    assert data["postscreen"]["pass_new"] == 1


def test_text_report_names_the_sections() -> None:
    result = mailprobe(str(require("postfix", "youyo-postfix-log-parser_test.log")))
    text = result.stdout.decode()
    assert result.returncode == 0
    for heading in ("Grand totals", "Per-hour traffic", "Top recipient domains"):
        assert heading in text
    assert "           3  received" in text
    assert result.stderr == b""  # no progress bar without a terminal


def test_gzip_stdin_and_plain_give_the_same_report(tmp_path: Path) -> None:
    source = require("postfix", "youyo-postfix-log-parser_test-iso8601.log")
    packed = tmp_path / "mail.log.1.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    plain = report(str(source))
    assert report(str(packed))["messages"] == plain["messages"]
    piped = report("-", stdin=source.read_bytes())
    assert (piped["lines"], piped["messages"]) == (plain["lines"], plain["messages"])


def test_since_and_until_select_lines() -> None:
    source = str(require("postfix", "youyo-postfix-log-parser_test-iso8601.log"))
    everything = report(source)["lines"]["total"]
    early = report(source, "--until", "2020-01-30T06:26:06+09:00")["lines"]
    late = report(source, "--since", "2020-01-30T06:26:06+09:00")["lines"]
    assert early["outside_window"] + late["outside_window"] == everything
    assert 0 < early["outside_window"] < everything


def test_show_unsupported_prints_the_lines(capsys: pytest.CaptureFixture[str]) -> None:
    source = str(require("postfix", "sergeymakinen-postfix_exporter_mail.log"))
    assert main(["logs", "--show-unsupported", source]) == 0
    out = capsys.readouterr().out
    assert "Unsupported lines" in out
    assert "postfix/qmgr[12345]: Unsupported" in out
    data = report("--show-unsupported", source)
    assert len(data["unsupported_lines"]) == data["lines"]["unsupported"] == 10


def test_trace_follows_a_message_across_instances(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("\n".join(chain(srs_delivers_first=False)) + "\n")
    config = tmp_path / "mailprobe.yml"
    config.write_text("logs:\n  services:\n    postfix: mx\n    postfix-srs: srs\n")
    by_queue_id = report("--config", str(config), "--trace", "C0000000003", str(log))
    assert by_queue_id["queue_ids"] == ["A0000000001", "B0000000002", "C0000000003"]
    services = [(row["service"], row["queue_id"]) for row in by_queue_id["lines"]]
    assert services[0] == ("mx", "A0000000001")
    assert services[-1] == ("srs", "C0000000003")
    assert by_queue_id["lines"][-1]["offset_seconds"] == pytest.approx(4.6)
    text = mailprobe("--config", str(config), "--trace", "A0000000001", str(log))
    assert text.returncode == 0
    first = text.stdout.decode().splitlines()[0]
    assert first == ("Trace of A0000000001: mx(A0000000001) -> mx(B0000000002) -> srs(C0000000003)")


def test_trace_by_message_id_from_stdin() -> None:
    lines = (require("postfix", "youyo-postfix-log-parser_test.log")).read_bytes()
    found = report(
        "--trace", "<A40CF64D-7F2D-42E4-8A76-CBFFF64A6EB1@example.com>", "-", stdin=lines
    )
    assert found["queue_ids"] == ["C6E0DDB74006"]
    assert [row["kind"] for row in found["lines"]][:3] == ["client", "message_id", "queued"]


def test_exit_codes(tmp_path: Path) -> None:
    assert mailprobe("/nonexistent/mail.log").returncode == 3
    bad = tmp_path / "bad.yml"
    bad.write_text("logs:\n  reasons:\n    - reason: x\n      pattern: '('\n")
    result = mailprobe(
        "--config", str(bad), str(require("postfix", "youyo-postfix-log-parser_test.log"))
    )
    assert result.returncode == 3
    assert "logs.reasons[0].pattern" in result.stderr.decode()
    missing = mailprobe(
        "--trace", "NOSUCHQID", str(require("postfix", "youyo-postfix-log-parser_test.log"))
    )
    assert missing.returncode == 1


def test_parallel_parts_count_what_one_process_counts(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"".join(generate(30_000, seed=11)))
    options = Options(LogSettings(), log.stat().st_mtime)
    alone = build(analyse(split([log], 1), sys.stdin.buffer, options, 1))
    parts = split([log], 2, min_bytes=0)
    assert len(parts) == 2
    together = build(analyse(parts, sys.stdin.buffer, options, 2))
    assert together["lines"] == alone["lines"]
    # (bytes_delivered may differ: a size logged before the cut, a delivery after it)
    for name in ("received", "rejected", "bounced", "delivered"):
        assert together["messages"][name] == alone["messages"][name]
    assert together["postscreen"] == alone["postscreen"]
    assert together["top"]["rejects"] == alone["top"]["rejects"]


def _without_root_read(argv: list[str]) -> list[str]:
    """``argv`` run so that file permissions apply: as root, without the capabilities
    that let root read any file."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip(
            "running as root and setpriv (util-linux) is missing: cannot drop the read override"
        )
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *argv]


def test_unreadable_inputs_are_told_apart(tmp_path: Path) -> None:
    missing = mailprobe(str(tmp_path / "mail.log"))
    assert missing.returncode == 3
    assert "mail.log: no such file" in missing.stderr.decode()
    directory = mailprobe(str(tmp_path))
    assert directory.returncode == 3
    assert f"{tmp_path}: is a directory" in directory.stderr.decode()
    secret = tmp_path / "secret.log"
    secret.write_text("Oct 10 04:02:08 mail postfix/qmgr[1]: 8A2B7400A: removed\n")
    secret.chmod(0)
    denied = subprocess.run(
        _without_root_read([sys.executable, "-m", "monitor", "logs", str(secret)]),
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "MAILPROBE_CONFIG"},
        check=False,
    )
    assert denied.returncode == 3, denied.stderr
    assert "secret.log: permission denied" in denied.stderr.decode()


def test_input_without_postfix_lines_says_so_and_fails() -> None:
    binary = mailprobe("/bin/ls")
    assert binary.returncode == 1
    assert binary.stdout == b""
    assert "no Postfix line found in" in binary.stderr.decode()
    empty = mailprobe("-", stdin=b"")
    assert empty.returncode == 1
    assert "the input is empty" in empty.stderr.decode()
    source = require("postfix", "youyo-postfix-log-parser_test-iso8601.log")
    outside = mailprobe("--until", "2000-01-01", str(source))
    assert outside.returncode == 1
    assert "between --since and --until" in outside.stderr.decode()
