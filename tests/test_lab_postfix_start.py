"""The lab starts Postfix on its fast path (queue made by the lab, `quick-start`, main.cf
dated back): Postfix's own checks must find nothing to create, fix or warn about."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from monitor.lab import Lab
from monitor.lab import faults as F
from monitor.lab.layout import POSTFIX_INSTANCES
from monitor.lab.postfix_start import COOLED_SECONDS
from tests.lab_fixture import broken


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every directory under ``root``: (owner, group, mode)."""
    found = {}
    for path in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        st = path.stat()
        found[str(path.relative_to(root))] = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
    return found


def test_postfix_check_finds_the_lab_queues_as_postfix_makes_them(lab: Lab) -> None:
    for instance in POSTFIX_INSTANCES:
        spool = lab.layout.postfix(instance) / "spool"
        before = tree(spool)
        log = lab.maillog(instance)
        mark = log.stat().st_size
        done = subprocess.run(
            lab.ns_command(["postfix", "-c", str(lab.postfix_config_dir(instance)), "check"]),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "warning" not in done.stdout + done.stderr
        with log.open("rb") as lines:
            lines.seek(mark)
            assert b"warning" not in lines.read()
        # post-install create-missing ran as part of the check: it made nothing new.
        assert tree(spool) == before, instance


def test_main_cf_a_fault_rewrites_is_dated_back(lab: Lab) -> None:
    """Postfix programs re-read a main.cf younger than a second until it is older: the
    lab dates its atomically written main.cf back so that a reload does not wait."""
    main_cf = lab.postfix_config_dir("mx") / "main.cf"
    before = main_cf.read_text()
    with broken(lab, F.OPEN_RELAY):
        assert main_cf.read_text() != before
        assert main_cf.stat().st_mtime <= time.time() - COOLED_SECONDS
    assert main_cf.stat().st_mtime <= time.time() - COOLED_SECONDS
