"""Runs every check on its own interval with apscheduler's asyncio scheduler.

Guarantees: a check never runs twice at once (``max_instances=1``; a run that is due
while the previous one is still going is skipped, and late runs coalesce into one); the
first runs are spread over a random offset so a fleet of checks does not fire in one
burst; the runner enforces each check's timeout and turns every failure into a result,
so one broken check never stops the scheduler or the others.  On stop no new run
starts and runs in flight get a grace period before they are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporters.result import Check, Status
from monitor.results import ResultsStore
from monitor.runner import run_check

log = logging.getLogger(__name__)

START_SPREAD_SECONDS = 10.0
"""First runs land at a random point in [0, min(interval, this)) after start or reload."""


def job_id(check: Check) -> str:
    return "/".join(check.key)


class CheckScheduler:
    def __init__(
        self,
        store: ResultsStore,
        start_spread: float = START_SPREAD_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._start_spread = start_spread
        self._rng = rng or random.Random()
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self._intervals: dict[str, float] = {}
        self._last_status: dict[str, Status] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._hurry = asyncio.Event()
        self._cancelling = False

    def start(self, checks: Iterable[Check]) -> None:
        self._scheduler.start()
        self.replace(checks)

    def replace(self, checks: Iterable[Check]) -> None:
        """Schedule exactly ``checks``.

        A check whose key and interval are unchanged keeps its timetable and runs the new
        definition from its next run; a new or re-timed check gets a fresh jittered start.
        A removed check's run in flight finishes, and the store drops its result.
        """
        wanted = {job_id(c): c for c in checks}
        for stale in self._intervals.keys() - wanted.keys():
            self._scheduler.remove_job(stale)
            self._last_status.pop(stale, None)
        for ident, check in wanted.items():
            if self._intervals.get(ident) == check.interval_seconds:
                self._scheduler.modify_job(ident, args=(check,))
                continue
            if ident in self._intervals:
                self._scheduler.remove_job(ident)
            self._add(ident, check)
        self._intervals = {ident: c.interval_seconds for ident, c in wanted.items()}

    def _add(self, ident: str, check: Check) -> None:
        offset = self._rng.uniform(0, min(check.interval_seconds, self._start_spread))
        first = datetime.now(UTC) + timedelta(seconds=offset)
        self._scheduler.add_job(
            self._run_one,
            trigger=IntervalTrigger(seconds=check.interval_seconds, start_date=first),
            args=(check,),
            id=ident,
            name=ident,
            # Given, not left to the trigger: if ``first`` has passed by the time the job
            # is added (a small offset, a busy machine), IntervalTrigger puts the first
            # run a whole interval later.
            next_run_time=first,
        )

    async def _run_one(self, check: Check) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            result = await run_check(check)
        except asyncio.CancelledError:
            if self._cancelling:
                return  # stop() ended the grace period; not an error of the job
            raise
        finally:
            if task is not None:
                self._inflight.discard(task)
        self._store.record(result)
        ident = job_id(check)
        if self._last_status.get(ident) is not result.status and ident in self._intervals:
            self._last_status[ident] = result.status
            level = logging.INFO if result.status in (Status.OK, Status.WARN) else logging.WARNING
            log.log(
                level,
                "check status changed",
                extra={
                    "kind": check.kind.value,
                    "check": check.name,
                    "target": check.target,
                    "status": result.status.value,
                    "reason": result.reason,
                },
            )

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def cut_grace(self) -> None:
        """End a running :meth:`stop`'s grace period now (a second SIGTERM)."""
        self._hurry.set()

    async def stop(self, grace: float) -> int:
        """Start no new run, wait up to ``grace`` s for runs in flight, cancel the rest.

        Returns how many runs were cancelled.
        """
        # apscheduler's asyncio executor cancels running jobs on shutdown, so pause first
        # and drain ourselves.
        self._scheduler.pause()
        pending = set(self._inflight)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            while pending and not self._hurry.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    pending | {hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
        finally:
            hurry.cancel()
        self._cancelling = True
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # the asyncio scheduler shuts down on the next loop turn
        return len(pending)
