"""`mailprobe lab config` prints a config the config model accepts, watching the lab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitor.config import parse_config
from monitor.lab import Lab
from monitor.lab.faults import FAULTS

ROOT = Path(__file__).resolve().parent.parent


def test_lab_config_validates_and_points_at_the_lab(lab: Lab) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "config", "--dir", str(lab.dir)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = parse_config(done.stdout, "lab config")
    assert [r.address for r in config.dns.resolvers] == [lab.resolver]
    assert {d.name for d in config.dns.domains} == {lab.domain, lab.world}
    assert config.smtp.ca_file == lab.ca_file
    ports = {(t.host, t.port, t.tls) for t in config.smtp.targets}
    submit = lab.hosts["submit"].address
    assert {(submit, 587, "starttls"), (submit, 465, "implicit")} <= ports
    assert {t.server_name for t in config.smtp.targets} >= {lab.hosts["mx"].name}
    routes = {r.name: r for r in config.canary.routes}
    assert set(routes) == {"inbound-forward", "outbound-submission", "outbound-submission-465"}
    assert (routes["outbound-submission"].smtp_port, routes["outbound-submission"].tls) == (
        587,
        "starttls",
    )
    assert routes["outbound-submission-465"].tls == "implicit"
    alice = lab.credentials("alice").password_file
    assert routes["outbound-submission"].password_file == alice
    [mailbox] = config.canary.mailboxes
    assert mailbox.password_file == lab.credentials("canary").password_file
    assert config.dmarc.mailbox is not None and config.dmarc.domains == [lab.domain]
    assert {s.path for s in config.logs.sources} == {
        lab.maillog(i) for i in ("mx", "srs", "submission", "world")
    }
    for user in ("alice", "canary", "dmarc"):
        assert lab.credentials(user).password() not in done.stdout


def test_lab_config_without_a_lab_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "config", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 3 and "no lab running" in done.stderr


def test_docs_list_every_fault() -> None:
    docs = (ROOT / "docs" / "lab.md").read_text(encoding="utf-8")
    missing = [f.name for f in FAULTS if f"`{f.name}`" not in docs]
    assert not missing, f"docs/lab.md lacks faults: {missing}"
