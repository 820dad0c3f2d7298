"""Parsing in worker processes with a bounded number of items in flight.

Parsing is CPU-bound Python (expat, xmltodict), so threads would share one core; worker
processes use both, and a report that misbehaves costs a worker, not the service. At
most ``in_flight`` items are held (read, queued or being parsed) at once, which bounds
memory to roughly ``in_flight`` x the size caps.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from exporters.dmarc.errors import InvalidReport, Reason
from exporters.dmarc.extract import from_message, sniff
from exporters.dmarc.limits import Limits
from exporters.dmarc.model import Report


@dataclass(frozen=True, slots=True)
class Analysis:
    """A worker's answer: a report and its payload hash, or why there is none.

    Plain fields only (no exception objects), so it crosses the process boundary."""

    report: Report | None
    report_sha256: str = ""
    reason: Reason | None = None
    detail: str = ""


def analyse(data: bytes, is_message: bool, limits: Limits) -> Analysis:
    """Unpack and parse one item (a mail, or a report file).

    parsedmarc is imported here, in the worker: the parent (``serve``, ``dmarc import``)
    never loads it, so an item already seen costs no parser start-up."""
    from exporters.dmarc.parse import parse_payload

    try:
        payload = from_message(data, limits) if is_message else sniff(data, limits)
        report = parse_payload(payload, limits)
    except InvalidReport as exc:
        return Analysis(None, reason=exc.reason, detail=exc.detail)
    except (RecursionError, MemoryError) as exc:
        return Analysis(None, reason=Reason.PARSE, detail=f"parser gave up ({type(exc).__name__})")
    return Analysis(report, hashlib.sha256(payload.data).hexdigest())


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker when the process that started it dies.

    A spawned worker holds both ends of its task queue's pipe, so it never reads EOF: after
    a ``kill -9`` of ``serve`` it would wait for work forever, an orphan. Linux's
    parent-death signal ends it instead; the check after it covers a parent that died
    before the signal was armed."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


class ParsePool:
    def __init__(self, workers: int, in_flight: int, limits: Limits) -> None:
        self._workers = workers
        self.in_flight = in_flight
        self._limits = limits
        self._slots = asyncio.Semaphore(in_flight)
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def analyse(self, data: bytes, is_message: bool) -> Analysis:
        async with self._slots:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    self._pool(), analyse, data, is_message, self._limits
                )
            except BrokenProcessPool:
                self._executor = None
                return Analysis(None, reason=Reason.PARSE, detail="the parser process died")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
