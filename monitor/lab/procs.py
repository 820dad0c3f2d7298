"""Processes of the lab: the private mount namespace, starting daemons inside it, finding
and stopping them by PID, and the loopback addresses.

Every lab daemon runs inside one mount namespace whose /etc/resolv.conf is the lab's own
(bind-mounted; nothing in /etc changes). A tiny holder process keeps the namespace alive
between starts; ``nsenter -t HOLDER -m`` puts a new daemon into it. The namespace also
names the lab's processes: ``down`` stops exactly the processes inside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

COMMAND_TIMEOUT = 20.0


class ProcessError(RuntimeError):
    pass


def run(
    argv: Sequence[str],
    *,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
    input: str | None = None,
) -> str:
    """Run a command to completion (``input`` on its stdin, else nothing); raise
    ProcessError with its output on failure."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProcessError(f"{argv[0]}: no answer after {timeout:.0f} s") from None
    except FileNotFoundError:
        raise ProcessError(f"{argv[0]}: not installed") from None
    if check and done.returncode != 0:
        out = (done.stderr or done.stdout).strip()
        raise ProcessError(f"{' '.join(argv[:3])}: exit {done.returncode}: {out[-800:]}")
    return done.stdout


def start_holder(resolv_conf: Path, pid_file: Path) -> int:
    """Start the namespace holder, detached from us (``setsid -f``); return its PID."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.unlink(missing_ok=True)
    log = pid_file.with_suffix(".log")
    script = (
        'mount --bind "$1" /etc/resolv.conf && echo $$ > "$2.tmp" && mv "$2.tmp" "$2" '
        "&& exec sleep infinity"
    )
    with log.open("wb") as out:
        subprocess.run(
            [
                "setsid", "-f", "unshare", "--mount", "--propagation", "private",
                "sh", "-c", script, "mailprobe-lab-ns", str(resolv_conf), str(pid_file),
            ],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False,
            timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid = read_pid(pid_file)
        if pid is not None:
            return pid
        time.sleep(0.005)
    error = log.read_text(errors="replace").strip()
    raise ProcessError(f"the lab's mount namespace did not come up: {error or 'no output'}")


def in_namespace(holder: int, argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so it runs inside the lab's mount namespace."""
    return ["nsenter", "-t", str(holder), "-m", "--", *argv]


def mount_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def processes_in_namespace(ns: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and mount_namespace(int(entry)) == ns:
            pids.append(int(entry))
    return pids


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def signal_pids(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until every PID is gone; return those still alive at the deadline."""
    left = [p for p in pids if alive(p)]
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        _reap(left)
        left = [p for p in left if alive(p)]
    return left


def _reap(pids: Iterable[int]) -> None:
    """Collect exited children of ours (only the holder can be one) so none stays a zombie."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def stop_pids(pids: Sequence[int], *, kill_at_once: Iterable[int] = (), grace: float = 6.0) -> None:
    """SIGTERM (SIGKILL for ``kill_at_once``), wait ``grace`` seconds, then SIGKILL the rest."""
    hard = set(kill_at_once)
    signal_pids([p for p in pids if p not in hard], signal.SIGTERM)
    signal_pids([p for p in pids if p in hard], signal.SIGKILL)
    left = wait_gone(pids, grace)
    if left:
        signal_pids(left, signal.SIGKILL)
        left = wait_gone(left, 3.0)
    if left:
        raise ProcessError(f"processes {left} did not exit")


def lo_addresses() -> set[str]:
    out = run(["ip", "-o", "-4", "addr", "show", "dev", "lo"])
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            found.add(parts[parts.index("inet") + 1].split("/")[0])
    return found


def add_addresses(addresses: Iterable[str]) -> None:
    present = lo_addresses()
    _ip_batch(f"addr add {a}/32 dev lo" for a in addresses if a not in present)


def remove_addresses(addresses: Iterable[str]) -> None:
    present = lo_addresses()
    _ip_batch(f"addr del {a}/32 dev lo" for a in addresses if a in present)


def _ip_batch(commands: Iterable[str]) -> None:
    """Several ``ip`` commands in one process (a lab has two dozen addresses)."""
    lines = "".join(f"{command}\n" for command in commands)
    if lines:
        run(["ip", "-batch", "-"], input=lines)


def tcp_listeners() -> set[tuple[str, int]]:
    """(address, port) of every IPv4 TCP socket in LISTEN state, from /proc/net/tcp."""
    found: set[tuple[str, int]] = set()
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            hex_addr, hex_port = fields[1].split(":")
            octets = [str(int(hex_addr[i : i + 2], 16)) for i in (6, 4, 2, 0)]
            found.add((".".join(octets), int(hex_port, 16)))
    return found


def children(parent: int) -> list[int]:
    """PIDs whose parent is ``parent`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            found.append(int(entry))
    return found
