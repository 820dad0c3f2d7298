"""`lab up|status|down` through the CLI, on a second lab of its own: fresh folder, ready
within the 5 s budget, idempotent `up`, and nothing left behind by `down`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.lab import Lab
from monitor.lab.procs import alive, lo_addresses, mount_namespace
from tests.lab_fixture import free_net, lab_unavailable, new_lab_dir

READY_BUDGET_SECONDS = 5.0


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.lab", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )


@pytest.fixture
def lab_dir(lab: Lab) -> Iterator[Path]:
    """A fresh folder; depends on the session lab so both run side by side."""
    if lab_unavailable():
        pytest.skip(lab_unavailable() or "")
    root = new_lab_dir()
    yield root
    cli("down", "--dir", str(root))
    shutil.rmtree(root, ignore_errors=True)


def lab_processes(ns: str, root: Path) -> list[int]:
    """Live (non-zombie) processes in the lab's namespace or naming its folder."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if mount_namespace(int(entry)) == ns or str(root).encode() in cmdline:
            found.append(int(entry))
    return found


def up_on_a_free_net(lab_dir: Path) -> subprocess.CompletedProcess[str]:
    """``lab up`` on a block nobody uses; another test run may take the block we found
    free a moment before we do (``up`` then refuses it, "in use"): take the next one."""
    for attempt in range(1, 4):
        up = cli("up", "--dir", str(lab_dir), "--net", free_net(skip=attempt))
        if up.returncode == 0 or "in use" not in up.stderr:
            break
    return up


def test_up_status_down_leaves_nothing(lab: Lab, lab_dir: Path) -> None:
    up = up_on_a_free_net(lab_dir)
    assert up.returncode == 0, up.stdout + up.stderr
    second = Lab(lab_dir)
    state = second.state()
    assert state is not None and state.up_seconds is not None and state.mnt_ns is not None
    assert state.up_seconds <= READY_BUDGET_SECONDS, f"ready in {state.up_seconds} s"
    assert f"lab up in {state.up_seconds:.2f} s" in up.stdout

    again = cli("up", "--dir", str(lab_dir))
    assert again.returncode == 0 and "already running" in again.stdout
    assert second.state() == state

    status = cli("status", "--dir", str(lab_dir))
    assert status.returncode == 0, status.stdout
    assert "DOWN" not in status.stdout and "postfix-mx" in status.stdout

    addresses = set(second.spec.addresses())
    assert addresses <= lo_addresses()
    running = lab_processes(state.mnt_ns, lab_dir)
    assert len(running) > 20

    down = cli("down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert lab_processes(state.mnt_ns, lab_dir) == []
    assert not any(alive(pid) for pid in running)
    assert not addresses & lo_addresses()
    ip = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True)
    assert not any(a in ip.stdout for a in addresses)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert str(lab_dir) not in netns.stdout
    assert str(lab_dir) not in Path("/proc/self/mounts").read_text()

    stopped = cli("status", "--dir", str(lab_dir))
    assert stopped.returncode == 1


def test_up_refuses_a_net_that_another_lab_uses(lab: Lab, lab_dir: Path) -> None:
    taken = cli("up", "--dir", str(lab_dir), "--net", lab.net)
    assert taken.returncode == 3
    assert "in use" in taken.stderr and lab.net in taken.stderr


def test_bad_net_is_a_clear_error(lab_dir: Path) -> None:
    for net, reason in (
        ("10.0.0.0/24", "127.0.0.0/8"),
        ("127.0.0.0/24", "127.0.0.1"),
        ("127.77.0.0/16", "/24"),
        ("nonsense", "nonsense"),
    ):
        done = cli("up", "--dir", str(lab_dir), "--net", net)
        assert done.returncode == 3 and reason in done.stderr, done.stderr


def test_missing_packages_are_named(lab_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor.lab", "up", "--dir", str(lab_dir)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent,
        env={"PATH": "/nonexistent"},
    )  # fmt: skip
    assert done.returncode == 3
    assert "missing Debian packages:" in done.stderr
    for package in ("postfix", "knot", "unbound", "opendkim", "postfix-policyd-spf-python"):
        assert package in done.stderr
