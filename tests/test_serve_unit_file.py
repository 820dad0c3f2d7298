"""deploy/mailprobe.service: its command line is one serve accepts, and systemd reads it."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import build_parser
from monitor.config.web import WebConfig

UNIT = Path(__file__).parent.parent / "deploy" / "mailprobe.service"


def unit_service_section() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser["Service"]


def test_execstart_is_a_serve_command_line_the_cli_accepts() -> None:
    service = unit_service_section()
    binary, *args = shlex.split(service["ExecStart"])
    assert binary == "/usr/local/bin/mailprobe"
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve"
    assert parsed.config == "/etc/mailprobe/mailprobe.yml"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["StateDirectory"] == "mailprobe"


def test_the_open_file_limit_leaves_room_for_the_connection_cap() -> None:
    # serve keeps client connections to half the open-file limit (the rest is for
    # checks, logs and state): the unit's limit must not lower the default cap.
    limit = int(unit_service_section()["LimitNOFILE"])
    assert limit // 2 >= WebConfig().max_connections


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    # The real binary path does not exist here; point it at this Python to verify the rest.
    text = UNIT.read_text(encoding="utf-8").replace("/usr/local/bin/mailprobe", sys.executable)
    copy = tmp_path / "mailprobe.service"
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "mailprobe.service" not in done.stderr, done.stderr
