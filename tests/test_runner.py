"""The runner contains every failure a check can have."""

from __future__ import annotations

import asyncio

from exporters.result import Check, CheckFailure, Kind, Outcome, Phase, Status
from monitor.runner import run_all, run_check


def make(name: str, body: object, timeout: float = 0.5) -> Check:
    async def run(phase: Phase) -> Outcome:
        assert callable(body)
        result = await body(phase)
        assert isinstance(result, Outcome)
        return result

    return Check(Kind.SMTP, name, name, run, interval_seconds=1, timeout_seconds=timeout)


async def hangs(phase: Phase) -> Outcome:
    phase.enter("waiting for banner")
    await asyncio.sleep(30)
    return Outcome.ok()


async def raises(phase: Phase) -> Outcome:
    raise RuntimeError("boom")


async def fails(phase: Phase) -> Outcome:
    raise CheckFailure("record missing", {"lookups": 3})


async def fine(phase: Phase) -> Outcome:
    return Outcome.ok({"x": 1})


async def test_timeout_names_phase() -> None:
    result = await run_check(make("slow", hangs, timeout=0.2))
    assert result.status is Status.FAIL
    assert result.reason == "timed out after 0.2 s in waiting for banner"
    assert 0.2 <= result.duration_seconds < 1


async def test_exception_is_error_and_failure_keeps_facts() -> None:
    crashed, failed, ok = await run_all(
        [make("c", raises), make("f", fails), make("o", fine)], concurrency=2
    )
    assert crashed.status is Status.ERROR and "RuntimeError: boom" in crashed.reason
    assert failed.status is Status.FAIL and failed.facts == {"lookups": 3}
    assert ok.status is Status.OK and ok.reason == "" and ok.facts == {"x": 1}


async def test_concurrency_limit_is_respected() -> None:
    running = 0
    peak = 0

    async def counted(phase: Phase) -> Outcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return Outcome.ok()

    await run_all([make(str(i), counted) for i in range(8)], concurrency=3)
    assert peak == 3
