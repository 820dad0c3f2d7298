"""Runs checks with deadlines and turns everything that can happen into a result.

Nothing escapes :func:`run_check`: a timeout becomes ``fail`` naming the phase the check
was in, a :class:`~exporters.result.CheckFailure` becomes its own status and reason, and
any other exception becomes ``error`` with its message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from exporters.result import Check, CheckFailure, CheckResult, Outcome, Phase, Status

log = logging.getLogger(__name__)


async def run_check(check: Check) -> CheckResult:
    phase = Phase()
    started = time.monotonic()
    try:
        async with asyncio.timeout(check.timeout_seconds):
            outcome = await check.run(phase)
    except TimeoutError:
        outcome = Outcome.fail(
            f"timed out after {check.timeout_seconds:g} s in {phase.current}",
            facts={"timeout_phase": phase.current},
        )
    except CheckFailure as exc:
        outcome = Outcome(exc.status, exc.reason, exc.facts)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning(
            "check raised kind=%s check=%s target=%s error=%r",
            check.kind,
            check.name,
            check.target,
            exc,
        )
        outcome = Outcome(Status.ERROR, f"check crashed: {type(exc).__name__}: {exc}")
    duration = time.monotonic() - started
    return CheckResult(
        kind=check.kind,
        check=check.name,
        target=check.target,
        status=outcome.status,
        reason=outcome.reason if outcome.status is not Status.OK else "",
        duration_seconds=duration,
        finished_at=time.time(),
        facts=dict(outcome.facts),
        detail=outcome.detail,
    )


async def run_all(
    checks: Iterable[Check],
    concurrency: int,
    on_done: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run every check once, at most ``concurrency`` at a time, results in input order."""
    limit = asyncio.Semaphore(concurrency)

    async def one(check: Check) -> CheckResult:
        async with limit:
            result = await run_check(check)
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(c) for c in checks)))
