"""Canary checks from the ``canary`` section: one round trip per route.

A run sends one canary and waits until it has an outcome or its deadline passed; the
runtime keeps following it afterwards (late, lost) in the ledger and in /metrics, and the
next run of the route reports what became of earlier ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from exporters.canary.ledger import Entry, Outcome
from exporters.result import Check, FactValue, Kind, Phase
from exporters.result import Outcome as CheckOutcome
from monitor.canary.service import service_for
from monitor.config import Config
from monitor.config.canary import CanaryRoute

SEND_ALLOWANCE = 60.0
"""Seconds a check may spend beyond the route's deadline (sending, the last IMAP scan)."""

JUDGE_ALLOWANCE = 5.0
"""Seconds past the deadline a check waits for the runtime to judge it (overdue, where)."""

Progress = Callable[[str, str], None]
"""``progress(route, text)``: the run command shows it on a terminal."""

_progress: list[Progress] = []


def on_progress(callback: Progress | None) -> None:
    """Set (or clear) where running canary checks report their progress."""
    _progress.clear()
    if callback is not None:
        _progress.append(callback)


def build(config: Config) -> list[Check]:
    checks = []
    for route in config.canary.routes:
        checks.append(
            Check(
                kind=Kind.CANARY,
                name="round_trip",
                target=route.name,
                run=partial(_round_trip, config, route),
                interval_seconds=route.schedule.interval or config.defaults.interval,
                timeout_seconds=route.deadline + SEND_ALLOWANCE,
            )
        )
    return checks


def _show(route: str, text: str) -> None:
    for callback in _progress:
        callback(route, text)


async def _round_trip(config: Config, route: CanaryRoute, phase: Phase) -> CheckOutcome:
    service = service_for(config)
    phase.enter("start")
    runtime = await service.acquire()
    started = time.time()
    try:
        phase.enter("send")
        _show(route.name, "sending")
        entry = await runtime.send(route.name)
        phase.enter("wait")

        def progress(current: Entry) -> None:
            left = max(0.0, current.deadline - time.time())
            _show(route.name, f"{current.state}, {left:.0f} s to deadline")

        entry = await runtime.wait(entry.id, entry.deadline + JUDGE_ALLOWANCE, progress)
        earlier = [e for e in runtime.finished_since(route.name, started - 1) if e.id != entry.id]
    finally:
        await service.release()
    _show(route.name, entry.state)
    return judge(entry, earlier)


def judge(entry: Entry, earlier: list[Entry] | None = None) -> CheckOutcome:
    """The check result for one canary (and what became of earlier ones of its route)."""
    d = entry.detail
    facts: dict[str, FactValue] = {"canary_id": entry.id, "outcome": entry.state}
    for key in ("latency", "detection", "folder", "where", "failure", "code", "status"):
        value = d.get(key)
        if isinstance(value, (str, int, float, bool)):
            facts[key] = value
    verifications = d.get("verifications", [])
    for v in verifications:
        facts[f"verify_{v['name']}"] = bool(v["ok"])
    if d.get("send_uncertain"):
        facts["send_uncertain"] = str(d["send_uncertain"])
    for e in earlier or []:
        facts[f"earlier_{e.id}"] = e.state + (
            f": {e.detail['where']}" if e.detail.get("where") else ""
        )
    lines = [f"{v['name']}: {'ok' if v['ok'] else 'FAILED'}: {v['detail']}" for v in verifications]
    for hop in d.get("hops", []):
        seconds = hop.get("seconds")
        lines.append(
            f"hop by {hop['by']} with {hop['protocol'] or '?'}{' TLS' if hop['tls'] else ''}"
            + (f" after {seconds:.0f} s" if seconds is not None else "")
        )
    detail = "\n".join(lines) or None
    where = f"; where: {d['where']}" if d.get("where") else ""
    state = entry.state
    if state in (Outcome.DELIVERED, Outcome.LATE):
        failed = [v for v in verifications if not v["ok"]]
        folder = d.get("folder", "inbox")
        what = f"{state} ({folder}) in {d.get('latency', 0):.1f} s"
        if failed:
            return CheckOutcome.fail(
                what + ", but " + "; ".join(v["detail"] for v in failed), facts, detail
            )
        if folder == "junk":
            return CheckOutcome.warn(f"{what}: filed as spam (\\Junk)", facts, detail)
        if state == Outcome.LATE:
            return CheckOutcome.warn(what + ", after its deadline", facts, detail)
        return CheckOutcome.ok(facts, detail)
    if state == "pending":
        waited = time.time() - entry.sent_at
        uncertain = " (the send timed out after DATA)" if d.get("send_uncertain") else ""
        return CheckOutcome.fail(
            f"late: not delivered {waited:.0f} s after sending{uncertain}{where}", facts, detail
        )
    reason = str(d.get("reason") or state)
    if state == Outcome.SEND_FAILED:
        reason = f"send_failed: {d.get('failure')}: {d.get('reason')}"
    if where and d["where"] not in reason:
        reason += where
    return CheckOutcome.fail(reason, facts, detail)
