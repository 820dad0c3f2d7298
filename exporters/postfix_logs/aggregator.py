"""Lines in, counters and histograms out: the hot path of the log exporter.

``feed_line`` (bytes from a file or stdin), ``feed_text`` and ``feed_journal`` (fields
of a journald record, used as they are) all end in one dispatch: the program name
picks a parser, the parser answers ``(Kind, match)``, the kind picks a handler that
updates counters keyed by the line's :class:`Program` and a few bounded values. Label
names and exposition live in ``monitor.metrics.postfix``; :meth:`snapshot` hands them a
consistent copy under the lock.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from re import Match
from typing import Any, Protocol

from exporters.postfix_logs.envelope import MONTHS, Clock, split_envelope
from exporters.postfix_logs.fields import handed_to
from exporters.postfix_logs.histogram import Histogram, HistogramData
from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.labels import (
    ACTIONS,
    COMMANDS,
    CONNECT_FAILURES,
    FINAL_STATUSES,
    OTHER,
    POSTSCREEN_ACTIONS,
    POSTSCREEN_BUSY,
    SASL_METHODS,
    STAGES,
    STATUSES,
    TLS_PROTOCOLS,
    BoundedLabel,
    DomainLabel,
    enhanced_code,
    reply_code,
)
from exporters.postfix_logs.programs import Program, ProgramTable, ServiceMap
from exporters.postfix_logs.reasons import ReasonClassifier
from exporters.postfix_logs.settings import LogSettings
from exporters.postfix_logs.tracker import MessageTracker

DELAY_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 172800)
"""Seconds; from sub-second local hops to the default 5-day queue lifetime's first days."""
SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
RECIPIENT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
DNSBL_RANK_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
FLEET_DELAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400)
DELAY_TRANSPORTS = ("smtp", "lmtp", "pipe", "local", "virtual")
"""Delivery agents whose ``delays=a/b/c/d`` feed ``postfix_<agent>_delivery_delay_seconds``."""
DELAY_STAGES = ("before_queue_manager", "queue_manager", "connection_setup", "transmission")

Handler = Callable[[Program, Match[str], "str | float"], None]


class Observer(Protocol):
    """Extra consumer of parsed lines (the one-shot report, tracing)."""

    kinds: frozenset[Kind]
    """The kinds it wants: it is called for those only, so it costs nothing per line
    of other kinds."""

    def observe(self, kind: Kind, program: Program, match: Match[str], stamp: str | float) -> None:
        """Called for every understood line of ``kinds``, after the metrics are updated."""


class JournalFields(Protocol):
    """The journald record fields the aggregator uses (the journald source's records).

    Read-only, so frozen dataclasses such as the source's ``JournalRecord`` match.
    """

    @property
    def message(self) -> bytes: ...
    @property
    def identifier(self) -> str | None: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def realtime_usec(self) -> int: ...


RawSink = Callable[[Program | None, str], None]
"""Receives unsupported (with their program) and malformed (``None``) lines."""


def _counter() -> defaultdict[Hashable, int]:
    return defaultdict(int)


@dataclass(frozen=True, slots=True)
class LineCounts:
    total: int
    postfix: int
    unsupported: int
    malformed: int
    foreign: int
    truncated: int
    outside_window: int


@dataclass(frozen=True, slots=True)
class LogSnapshot:
    """A consistent copy of the aggregator's state; keys start with a :class:`Program`."""

    lines: LineCounts
    last_line_time: float | None
    """Unix time of the newest line seen, None before the first."""
    counters: dict[str, dict[Hashable, int]]
    histograms: dict[str, dict[Hashable, HistogramData]]
    histogram_bounds: dict[str, tuple[float, ...]]
    tracked_messages: int


class LogAggregator:
    """Counts what Postfix logs. Thread-safe: feed from one thread, snapshot from another."""

    def __init__(
        self,
        settings: LogSettings | None = None,
        *,
        clock: Clock | None = None,
        window: tuple[float | None, float | None] | None = None,
        observers: Sequence[Observer] = (),
        on_raw: RawSink | None = None,
    ) -> None:
        settings = settings or LogSettings()
        self.settings = settings
        self._programs = ProgramTable(ServiceMap(settings.services))
        self._lookup = self._programs.lookup
        self._tokens: dict[str, Program] = {}
        """``program[pid]:`` as it appears in lines -> Program (bounded, cleared when full)."""
        self.clock = clock or Clock()
        self._window = window
        self._watchers: list[tuple[Observer, ...]] = [
            tuple(o for o in observers if kind in o.kinds) for kind in range(max(Kind) + 1)
        ]
        self._on_raw = on_raw
        self._max_bytes = settings.max_line_bytes
        self.lock = threading.Lock()
        self._reason = ReasonClassifier(settings.reasons)
        self._domain = DomainLabel(settings.domains)
        self._cipher = BoundedLabel(64)
        self._enhanced = BoundedLabel(128)
        self._zones = BoundedLabel(32)
        self._pipe_relays = BoundedLabel(32)
        self._selectors = BoundedLabel(16)
        self._maps = BoundedLabel(32)
        self._paths = BoundedLabel(64)
        self._stats_seen: dict[str, tuple[tuple[str, str, int], ...]] = {}
        self.tracker = MessageTracker(
            self._observe_fleet_delay,
            max_messages=settings.tracker_max_messages,
            ttl=settings.tracker_ttl_seconds,
        )

        self.lines_total = 0
        self.lines_postfix = 0
        self.lines_unsupported = 0
        self.lines_malformed = 0
        self.lines_foreign = 0
        self.lines_truncated = 0
        self.lines_outside_window = 0
        self._last_stamp: str | float | None = None
        self.first_stamp: str | float | None = None
        """Timestamp of the first line read (for the report's period)."""

        self.counters: dict[str, defaultdict[Hashable, int]] = {
            name: _counter()
            for name in (
                "unsupported",  # program
                "foreign",  # program
                "severity",  # (program, level)
                "connects",  # program
                "disconnects",  # program
                "commands",  # (program, command, result)
                "lost",  # (program, stage)
                "timeouts",  # (program, stage)
                "protocol_errors",  # (program, error)
                "fcrdns",  # program
                "processed",  # (program, sasl_method)
                "smtpd_rejects",  # (program, stage, code, enhanced, reason)
                "ratelimited",  # program
                "access_actions",  # (program, action, stage)
                "milter_actions",  # (program, action)
                "cleanup_rejects",  # (program, action, enhanced, reason)
                "cleanup_actions",  # (program, action, check)
                "not_accepted",  # (program, table)
                "sasl_failures",  # (program, method)
                "sasl_backend",  # program
                "tls",  # (program, trust, protocol, cipher, secret_bits, algorithm_bits)
                "tls_failures",  # (program, event)
                "postscreen",  # (program, action)
                "postscreen_rejects",  # (program, code, enhanced, reason)
                "postscreen_busy",  # (program, reason)
                "dnsbl",  # (program, zone)
                "cleanup_processed",  # program
                "queued",  # program
                "removed",  # program
                "expired",  # (program, status)
                "pickup",  # program
                "postsuper",  # (program, action)
                "notifications",  # (program, notification, recipient)
                "deliveries",  # (program, status, dsn_class, domain)
                "delivery_problems",  # (program, status, reason)
                "connection_failures",  # (program, reason)
                "client_sasl_failures",  # program
                "lifecycle",  # (program, event)
                "srs",  # (direction, result)
                "dkim_signed",  # (selector, domain)
                "rspamd",  # action
                "virus",  # program
                "spamd",  # result
            )
        }
        self.histograms: dict[str, Histogram] = {
            "size": Histogram(SIZE_BUCKETS),  # program
            "recipients": Histogram(RECIPIENT_BUCKETS),  # program
            "dnsbl_rank": Histogram(DNSBL_RANK_BUCKETS),  # program
            "fleet_delay": Histogram(FLEET_DELAY_BUCKETS),  # path
            **{
                f"delay_{t}": Histogram(DELAY_BUCKETS)  # (program, stage[, relay for pipe])
                for t in DELAY_TRANSPORTS
            },
        }
        c = self.counters
        self._unsupported = c["unsupported"]
        self._foreign = c["foreign"]
        self._connects = c["connects"]
        self._disconnects = c["disconnects"]
        self._postscreen = c["postscreen"]
        self._dnsbl = c["dnsbl"]
        self._tls_counts = c["tls"]
        self._zone_labels: dict[str, str] = {}
        self._tls_labels: dict[tuple[str | Any, ...], tuple[str, ...]] = {}
        """Raw values -> labels; both stay small (the label sets are bounded and these
        only remember raw values whose labels were decided)."""
        self._handlers = self._handler_table()
        self._when_stamp: str | float = ""
        self._when_value = 0.0

    # ---------------------------------------------------------------- feeding

    def feed_line(self, raw: bytes) -> None:
        """One line as read (trailing newline optional); never raises on content."""
        with self.lock:
            self._consume(self._decoded((raw,)))

    def feed_lines(self, raws: Iterable[bytes]) -> None:
        """A batch of lines as read (the follower's path: one lock for the batch)."""
        with self.lock:
            self._consume(self._decoded(raws))

    def feed_text(self, text: str) -> None:
        with self.lock:
            self._consume((text,))

    def feed_texts(self, texts: Iterable[str]) -> None:
        """Already decoded lines without their newline (the one-shot reader's path)."""
        with self.lock:
            self._consume(texts)

    def _decoded(self, raws: Iterable[bytes]) -> Iterator[str]:
        limit = self._max_bytes
        for raw in raws:
            if len(raw) > limit:
                raw = raw[:limit]
                self.lines_truncated += 1
            yield raw.decode("utf-8", "replace").rstrip("\r\n")

    def feed_journal(
        self,
        message: str | bytes,
        identifier: str | None,
        pid: int | str | None,
        realtime_usec: int | str,
    ) -> None:
        """A journald record's MESSAGE, SYSLOG_IDENTIFIER, _PID, __REALTIME_TIMESTAMP.

        The fields are used as they are: nothing is re-rendered into a syslog line.
        """
        with self.lock:
            self._journal(message, identifier, pid, realtime_usec)

    def feed_journal_records(self, records: Iterable[JournalFields]) -> None:
        """A batch of journal records (the journald source's path: one lock per batch)."""
        with self.lock:
            for r in records:
                self._journal(r.message, r.identifier, r.pid, r.realtime_usec)

    def _journal(
        self,
        message: str | bytes,
        identifier: str | None,
        pid: int | str | None,
        realtime_usec: int | str,
    ) -> None:
        if len(message) > self._max_bytes:
            message = message[: self._max_bytes]
            self.lines_truncated += 1
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        stamp = int(realtime_usec) / 1e6
        self.lines_total += 1
        if self._window is not None and not self._in_window(stamp):
            self.lines_outside_window += 1
            return
        self._last_stamp = stamp
        if self.first_stamp is None:
            self.first_stamp = stamp
        prog = self._lookup(identifier or "")
        parsed = prog.parse(message)
        if prog.postfix:
            self.lines_postfix += 1
            if parsed is None:
                self.lines_unsupported += 1
                self._unsupported[prog] += 1
                if self._on_raw is not None:
                    self._on_raw(prog, f"{identifier}[{pid}]: {message}")
                return
        else:
            self.lines_foreign += 1
            self._foreign[prog] += 1
            if parsed is None:
                return
        kind, match = parsed
        self._handlers[kind](prog, match, stamp)
        for observer in self._watchers[kind]:
            observer.observe(kind, prog, match, stamp)

    def _consume(self, texts: Iterable[str]) -> None:
        """The hot loop: everything per line is inlined here except parser and handler.

        The envelope of the two common shapes (RFC 3339, RFC 3164 with a single space
        between fields) is split with ``str.split``; any other line goes through
        :func:`split_envelope`'s regex, which decides what is malformed.
        """
        months = MONTHS
        tokens = self._tokens
        slow_split = split_envelope
        cached = self._programs.cached
        lookup = self._lookup
        handlers = self._handlers
        watchers = self._watchers
        unsupported = self._unsupported
        foreign = self._foreign
        on_raw = self._on_raw
        window = self._window
        total = postfix = unsupported_lines = malformed = foreign_lines = outside = 0
        stamp = last = first = ""
        try:
            for text in texts:
                total += 1
                if text[10:11] == "T" and text[4:5] == "-":
                    parts = text.split(" ", 3)
                elif text[3:4] == " " and text[:3] in months:
                    end = text.find(" ", 7)
                    parts = [text[:end], *text[end + 1 :].split(" ", 2)]
                else:
                    parts = None
                prog = None
                if parts is not None and len(parts) == 4 and parts[1]:
                    # "postfix/smtpd[297535]:" -> Program; daemons keep their pid a while
                    token = parts[2]
                    prog = tokens.get(token)
                    if prog is None and token[-1:] == ":":
                        program = token[:-1]
                        bracket = program.find("[")
                        if bracket < 0:
                            if program:
                                prog = cached(program) or lookup(program)
                        elif program[-1] == "]" and program[bracket + 1 : -1].isdigit() and bracket:
                            program = program[:bracket]
                            prog = cached(program) or lookup(program)
                        if prog is not None:
                            if len(tokens) >= 8192:
                                tokens.clear()
                            tokens[token] = prog
                    if prog is not None:
                        stamp, message = parts[0], parts[3]
                if prog is None:
                    envelope = slow_split(text)
                    if envelope is None:
                        malformed += 1
                        if on_raw is not None:
                            on_raw(None, text)
                        continue
                    stamp, _host, program, _pid, message = envelope
                    prog = cached(program) or lookup(program)
                if window is not None and not self._in_window(stamp):
                    outside += 1
                    continue
                last = stamp
                if not first:
                    first = stamp
                rules = prog.rules
                match = None
                if rules is not None:  # Rules.parse, inlined
                    space = message.find(" ")
                    head = message[:space] if space > 0 else message
                    for kind, pattern in rules.table.get(head, rules.queue_id):  # noqa: B007
                        match = pattern.match(message)
                        if match is not None:
                            break
                else:
                    parsed = prog.parse(message)
                    if parsed is not None:
                        kind, match = parsed
                if prog.postfix:
                    postfix += 1
                    if match is None:
                        unsupported_lines += 1
                        unsupported[prog] += 1
                        if on_raw is not None:
                            on_raw(prog, text)
                        continue
                else:
                    foreign_lines += 1
                    foreign[prog] += 1
                    if match is None:
                        continue
                handlers[kind](prog, match, stamp)
                for observer in watchers[kind]:
                    observer.observe(kind, prog, match, stamp)
        finally:
            self.lines_total += total
            self.lines_postfix += postfix
            self.lines_unsupported += unsupported_lines
            self.lines_malformed += malformed
            self.lines_foreign += foreign_lines
            self.lines_outside_window += outside
            if last:
                self._last_stamp = last
                if self.first_stamp is None:
                    self.first_stamp = first

    def _in_window(self, stamp: str | float) -> bool:
        assert self._window is not None
        when = self.clock.epoch(stamp)
        if when is None:
            return True
        since, until = self._window
        return (since is None or when >= since) and (until is None or when < until)

    def finish(self) -> None:
        """End of a one-shot input: observe the deliveries still waiting for links."""
        with self.lock:
            self.tracker.drain()

    # ---------------------------------------------------------------- reading

    def snapshot(self) -> LogSnapshot:
        with self.lock:
            last = self.clock.epoch(self._last_stamp) if self._last_stamp is not None else None
            self.tracker.flush(time.time() if last is None else max(last, time.time()))
            return LogSnapshot(
                lines=LineCounts(
                    self.lines_total,
                    self.lines_postfix,
                    self.lines_unsupported,
                    self.lines_malformed,
                    self.lines_foreign,
                    self.lines_truncated,
                    self.lines_outside_window,
                ),
                last_line_time=last,
                counters={name: dict(c) for name, c in self.counters.items()},
                histograms={name: h.snapshot() for name, h in self.histograms.items()},
                histogram_bounds={name: h.bounds for name, h in self.histograms.items()},
                tracked_messages=len(self.tracker),
            )

    # ---------------------------------------------------------------- parts

    def export_state(self) -> dict[str, Any]:
        """Everything counted so far, picklable, with programs as label tuples: what a
        worker reading part of an input hands back to be merged."""
        with self.lock:
            self.tracker.drain()
            return {
                "lines": [
                    self.lines_total,
                    self.lines_postfix,
                    self.lines_unsupported,
                    self.lines_malformed,
                    self.lines_foreign,
                    self.lines_truncated,
                    self.lines_outside_window,
                ],
                "first": self.first_stamp,
                "last": self._last_stamp,
                "counters": {
                    name: [(_plain(key), value) for key, value in counter.items()]
                    for name, counter in self.counters.items()
                },
                "histograms": {
                    name: [(_plain(key), data) for key, data in h.snapshot().items()]
                    for name, h in self.histograms.items()
                },
            }

    def merge_state(self, state: dict[str, Any]) -> None:
        """Add a part's :meth:`export_state` to this aggregator's counts."""
        with self.lock:
            (
                total,
                postfix,
                unsupported,
                malformed,
                foreign,
                truncated,
                outside,
            ) = state["lines"]
            self.lines_total += total
            self.lines_postfix += postfix
            self.lines_unsupported += unsupported
            self.lines_malformed += malformed
            self.lines_foreign += foreign
            self.lines_truncated += truncated
            self.lines_outside_window += outside
            last = state["last"]
            if last is not None and (
                self._last_stamp is None
                or (self.clock.epoch(last) or 0.0) >= (self.clock.epoch(self._last_stamp) or 0.0)
            ):
                self._last_stamp = last
            first = state["first"]
            if first is not None and (
                self.first_stamp is None
                or (self.clock.epoch(first) or 0.0) < (self.clock.epoch(self.first_stamp) or 0.0)
            ):
                self.first_stamp = first
            canonical = self._programs.canonical
            for name, items in state["counters"].items():
                counter = self.counters[name]
                for key, value in items:
                    counter[_restore(key, canonical)] += value
            for name, items in state["histograms"].items():
                histogram = self.histograms[name]
                for key, data in items:
                    histogram.add(_restore(key, canonical), data)

    # ---------------------------------------------------------------- handlers

    def _handler_table(self) -> list[Handler]:
        by_kind: dict[Kind, Handler] = {
            Kind.LOG: self._log,
            Kind.INFO: _ignore,
            Kind.TABLE_CHANGED: _ignore,
            Kind.CONNECT: self._connect,
            Kind.DISCONNECT: self._disconnect,
            Kind.CLIENT: self._client,
            Kind.ACTION: self._action,
            Kind.PROXY: self._proxy,
            Kind.SESSION_END: self._session_end,
            Kind.PROTOCOL_ERROR: self._protocol_error,
            Kind.FCRDNS: self._fcrdns,
            Kind.SASL_FAILURE: self._sasl_failure,
            Kind.SASL_BACKEND: self._sasl_backend,
            Kind.TLS: self._tls,
            Kind.PS_CONNECT: self._ps_connect,
            Kind.PS_PASS: self._ps_pass,
            Kind.PS_LISTED: self._ps_listed,
            Kind.PS_DNSBL: self._ps_dnsbl,
            Kind.PS_VIOLATION: self._ps_violation,
            Kind.PS_DISCONNECT: self._ps_disconnect,
            Kind.PS_REJECT: self._ps_reject,
            Kind.PS_BUSY: self._ps_busy,
            Kind.DNSBL_LISTED: self._dnsbl_listed,
            Kind.TLS_HANDSHAKE_FAILED: self._tls_handshake_failed,
            Kind.MESSAGE_ID: self._message_id,
            Kind.CLEANUP_CHECK: self._cleanup_check,
            Kind.NOT_ACCEPTED: self._not_accepted,
            Kind.QUEUED: self._queued,
            Kind.REMOVED: self._removed,
            Kind.EXPIRED: self._expired,
            Kind.PICKUP: self._pickup,
            Kind.POSTSUPER: self._postsuper,
            Kind.POSTSUPER_SUMMARY: _ignore,
            Kind.NOTIFICATION: self._notification,
            Kind.DELIVERY: self._delivery,
            Kind.CONNECT_FAILED: self._connect_failed,
            Kind.REMOTE_REPLY: self._remote_reply,
            Kind.CONVERSATION_LOST: self._conversation_lost,
            Kind.TLS_FAILED: self._tls_failed,
            Kind.CLIENT_SASL_FAILED: self._client_sasl_failed,
            Kind.LIFECYCLE: self._lifecycle,
            Kind.FOREIGN: _ignore,
            Kind.SRS: self._srs,
            Kind.DKIM_SIGNED: self._dkim_signed,
            Kind.RSPAMD: self._rspamd,
            Kind.VIRUS: self._virus,
            Kind.SPAMD: self._spamd,
        }
        table: list[Handler] = [_ignore] * (max(Kind) + 1)
        for kind, handler in by_kind.items():
            table[kind] = handler
        return table

    def _when(self, stamp: str | float) -> float:
        """Unix time of a line's stamp; neighbouring lines share theirs, so the last
        answer is kept."""
        if stamp == self._when_stamp:
            return self._when_value
        when = self.clock.epoch(stamp)
        if when is None:
            return time.time()
        self._when_stamp, self._when_value = stamp, when
        return when

    def _warning(self, prog: Program, m: Match[str]) -> None:
        if m.string.startswith("warning: "):
            self.counters["severity"][prog, "warning"] += 1

    def _log(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["severity"][prog, m["level"]] += 1

    # smtpd

    def _connect(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._connects[prog] += 1

    def _disconnect(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._disconnects[prog] += 1
        stats = m["stats"]
        if stats:
            commands = self.counters["commands"]
            for command, result, count in self._command_stats(stats):
                commands[prog, command, result] += count

    def _command_stats(self, stats: str) -> tuple[tuple[str, str, int], ...]:
        """``ehlo=2 starttls=1 rcpt=0/1 commands=3/4`` -> (command, result, count)...

        Sessions of one client look alike, so the answer is remembered per text.
        """
        found = self._stats_seen.get(stats)
        if found is not None:
            return found
        out = []
        for item in stats.split():
            name, _, value = item.partition("=")
            ok, slash, total = value.partition("/")
            if name == "commands" or not ok.isdigit() or (slash and not total.isdigit()):
                continue
            command = COMMANDS.get(name, OTHER)
            accepted = int(ok)
            failed = int(total) - accepted if slash else 0
            if accepted:
                out.append((command, "accepted", accepted))
            if failed > 0:
                out.append((command, "rejected", failed))
        found = tuple(out)
        if len(self._stats_seen) >= 4096:
            self._stats_seen.clear()
        self._stats_seen[stats] = found
        return found

    def _client(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        method = m["sasl_method"]
        label = "" if not method else SASL_METHODS.get(method.upper().rstrip(","), OTHER)
        self.counters["processed"][prog, label] += 1
        self.tracker.received(m["qid"], prog.service, self._when(stamp))

    def _action(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        action = ACTIONS.get(m["action"], OTHER)
        stage = STAGES.get(m["stage"], OTHER)
        if action.startswith("milter-"):
            self.counters["milter_actions"][prog, action] += 1
        if action in ("reject", "milter-reject"):
            text = m["text"]
            enhanced = self._enhanced(enhanced_code(m["enhanced"]))
            reason = self._reason(text)
            if prog.daemon == "cleanup":
                self.counters["cleanup_rejects"][prog, action, enhanced, reason] += 1
            else:
                key = (prog, stage, reply_code(m["code"]), enhanced, reason)
                self.counters["smtpd_rejects"][key] += 1
                if stage == "RCPT" and " Rate limit " in text:
                    self.counters["ratelimited"][prog] += 1
        else:
            self.counters["access_actions"][prog, action, stage] += 1

    def _proxy(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        if m["action"] == "reject":
            enhanced = self._enhanced(enhanced_code(m["enhanced"]))
            key = (prog, "END-OF-MESSAGE", reply_code(m["code"]), enhanced, self._reason(m["text"]))
            self.counters["smtpd_rejects"][key] += 1

    def _session_end(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        event = m["event"]
        stage = STAGES.get(m["stage"], OTHER)
        if event == "lost connection":
            self.counters["lost"][prog, stage] += 1
        elif event == "timeout":
            self.counters["timeouts"][prog, stage] += 1
        else:
            self.counters["protocol_errors"][prog, "too_many_errors"] += 1

    def _protocol_error(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        error = _PROTOCOL_ERRORS.get(m["event"], OTHER)
        self.counters["protocol_errors"][prog, error] += 1
        self._warning(prog, m)

    def _fcrdns(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["fcrdns"][prog] += 1
        self._warning(prog, m)

    def _sasl_failure(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        method = SASL_METHODS.get(m["method"].upper(), OTHER)
        self.counters["sasl_failures"][prog, method] += 1
        self._warning(prog, m)

    def _sasl_backend(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["sasl_backend"][prog] += 1
        self._warning(prog, m)

    def _tls(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        raw = m.group("trust", "protocol", "cipher", "secret_bits", "algorithm_bits")
        labels = self._tls_labels.get(raw)
        if labels is None:
            if len(self._tls_labels) >= 4096:
                self._tls_labels.clear()
            trust, protocol, cipher, secret, algorithm = raw
            labels = self._tls_labels[raw] = (
                trust,
                TLS_PROTOCOLS.get(protocol, OTHER),
                self._cipher(cipher),
                secret if len(secret) <= 4 else OTHER,
                algorithm if len(algorithm) <= 4 else OTHER,
            )
        self._tls_counts[(prog, *labels)] += 1

    # postscreen, dnsblog, tlsproxy

    def _ps_connect(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, "connect"] += 1

    def _ps_pass(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, "pass_new" if m["pass_type"] == "NEW" else "pass_old"] += 1

    def _ps_listed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, POSTSCREEN_ACTIONS.get(m["action"], OTHER)] += 1

    def _ps_dnsbl(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, "dnsbl"] += 1
        self.histograms["dnsbl_rank"].observe(prog, int(m["rank"]))

    def _ps_violation(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, POSTSCREEN_ACTIONS.get(m["violation"], OTHER)] += 1

    def _ps_disconnect(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, "disconnect"] += 1

    def _ps_reject(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, "reject"] += 1
        enhanced = self._enhanced(enhanced_code(m["enhanced"]))
        key = (prog, reply_code(m["code"]), enhanced, self._reason(m["text"]))
        self.counters["postscreen_rejects"][key] += 1

    def _ps_busy(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._postscreen[prog, "busy"] += 1
        reason = POSTSCREEN_BUSY.get(m["text"], OTHER)
        self.counters["postscreen_busy"][prog, reason] += 1

    def _dnsbl_listed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        zone = m["dnsbl"]
        label = self._zone_labels.get(zone)
        if label is None:
            if len(self._zone_labels) >= 4096:
                self._zone_labels.clear()
            label = self._zone_labels[zone] = self._zones(zone.lower())
        self._dnsbl[prog, label] += 1

    def _tls_handshake_failed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["tls_failures"][prog, "handshake_failed"] += 1

    # queue

    def _message_id(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["cleanup_processed"][prog] += 1

    def _cleanup_check(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        action = ACTIONS.get(m["action"], OTHER)
        self.counters["cleanup_actions"][prog, action, m["check"]] += 1
        if action.startswith("milter-"):
            self.counters["milter_actions"][prog, action] += 1
        if action == "reject":
            detail = m["detail"] or ""
            enhanced, _, text = detail.partition(" ")
            if not _enhanced_shape(enhanced):
                enhanced, text = "", detail
            key = (prog, action, self._enhanced(enhanced), self._reason(text or m["text"]))
            self.counters["cleanup_rejects"][key] += 1

    def _not_accepted(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        table = m["table"]
        self.counters["not_accepted"][prog, self._maps(table) if table else ""] += 1
        self.counters["severity"][prog, "warning"] += 1

    def _queued(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        if self.tracker.first_queued(m["qid"]):
            self.counters["queued"][prog] += 1
            self.histograms["size"].observe(prog, int(m["size"]))
            self.histograms["recipients"].observe(prog, int(m["nrcpt"]))

    def _removed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["removed"][prog] += 1
        self.tracker.removed(m["qid"], self._when(stamp))

    def _expired(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["expired"][prog, m["status"]] += 1

    def _pickup(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["pickup"][prog] += 1
        self.tracker.received(m["qid"], prog.service, self._when(stamp))

    def _postsuper(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["postsuper"][prog, m["action"].replace(" ", "_")] += 1
        if m["action"] == "removed":
            self.tracker.removed(m["qid"], self._when(stamp))

    def _notification(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        key = (prog, m["notification"].replace(" ", "_").replace("-", "_"), m["recipient"])
        self.counters["notifications"][key] += 1

    # delivery

    def _delivery(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        status = STATUSES.get(m["status"], OTHER)
        dsn = m["dsn"]
        domain = self._domain(m["to"])
        self.counters["deliveries"][prog, status, dsn[0], domain] += 1
        if status == "sent":
            child = handed_to(m["response"])
            when = self._when(stamp)
            if child is not None:
                self.tracker.handed_over(m["qid"], child, when)
            self.tracker.delivered(m["qid"], when, child)
        elif status in ("deferred", "bounced"):
            self.counters["delivery_problems"][prog, status, self._reason(m["response"])] += 1
        if status in FINAL_STATUSES and prog.daemon in _DELAY_HISTOGRAMS:
            self._observe_delays(prog, m)

    def _observe_delays(self, prog: Program, m: Match[str]) -> None:
        histogram = self.histograms[_DELAY_HISTOGRAMS[prog.daemon]]
        values = (m["d_before_qmgr"], m["d_in_qmgr"], m["d_conn_setup"], m["d_transmission"])
        if prog.daemon == "pipe":
            relay = self._pipe_relays(m["relay"])
            for stage, value in zip(DELAY_STAGES, values, strict=True):
                histogram.observe((prog, stage, relay), float(value))
        else:
            for stage, value in zip(DELAY_STAGES, values, strict=True):
                histogram.observe((prog, stage), float(value))

    def _connect_failed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        reason = CONNECT_FAILURES.get(m["reason"], OTHER)
        self.counters["connection_failures"][prog, reason] += 1

    def _remote_reply(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        if m["refused"]:
            self.counters["connection_failures"][prog, "greeting_refused"] += 1

    def _conversation_lost(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        reason = "lost_connection" if m["event"] == "lost connection" else "conversation_timeout"
        self.counters["connection_failures"][prog, reason] += 1

    def _tls_failed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        event = _TLS_FAILURES.get(m["event"].split(",")[0], OTHER)
        self.counters["tls_failures"][prog, event] += 1

    def _client_sasl_failed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["client_sasl_failures"][prog] += 1

    def _lifecycle(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["lifecycle"][prog, _LIFECYCLE.get(m["event"], OTHER)] += 1
        self._warning(prog, m)

    # programs sharing mail.log

    def _srs(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        direction, result = _SRS_RESULTS.get(m["result"], ("forward", OTHER))
        direction = m.groupdict().get("direction") or direction
        self.counters["srs"][direction, result] += 1

    def _dkim_signed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        domain = self._domain("@" + m["domain"])
        self.counters["dkim_signed"][self._selectors(m["selector"]), domain] += 1

    def _rspamd(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["rspamd"][_RSPAMD_ACTIONS.get(m["action"], OTHER)] += 1

    def _virus(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["virus"][prog] += 1

    def _spamd(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.counters["spamd"]["ham" if m["result"] == "clean message" else "spam"] += 1

    def _observe_fleet_delay(self, path: str, seconds: float) -> None:
        self.histograms["fleet_delay"].observe(self._paths(path), max(seconds, 0.0))


def _plain(key: Hashable) -> Hashable:
    """A state key with its Program replaced by a picklable marker tuple."""
    if isinstance(key, Program):
        return ("\0program", key.service, key.daemon, key.instance, key.postfix)
    if isinstance(key, tuple) and key and isinstance(key[0], Program):
        return (_plain(key[0]), *key[1:])
    return key


def _restore(key: Any, canonical: Callable[[str, str, str, bool], Program]) -> Hashable:
    if isinstance(key, tuple) and key:
        if key[0] == "\0program":
            return canonical(key[1], key[2], key[3], key[4])
        if isinstance(key[0], tuple) and key[0] and key[0][0] == "\0program":
            return (_restore(key[0], canonical), *key[1:])
    return key  # type: ignore[no-any-return]


def _ignore(prog: Program, m: Match[str], stamp: str | float) -> None:
    """Understood lines that feed no metric beyond the line counts."""


_DELAY_HISTOGRAMS = {t: f"delay_{t}" for t in DELAY_TRANSPORTS}

_PROTOCOL_ERRORS = {
    "improper command pipelining": "improper_pipelining",
    "bare <LF> received": "bare_lf",
    "SSL_accept error": "ssl_accept_error",
    "non-SMTP command": "non_smtp_command",
    "Illegal address syntax": "illegal_address_syntax",
}
_TLS_FAILURES = {
    "certificate verification failed": "certificate_verification",
    "server certificate verification failed": "certificate_verification",
    "Server certificate not trusted": "certificate_untrusted",
    "Server certificate not verified": "certificate_unverified",
    "SSL_connect error": "handshake_failed",
    "Cannot start TLS": "cannot_start_tls",
    "TLS is required": "tls_required",
    "cannot load Certificate Authority data": "ca_unavailable",
    "cannot load RSA certificate and key data": "certificate_unavailable",
    "cannot load ECDSA certificate and key data": "certificate_unavailable",
    "cannot load certificate and key data": "certificate_unavailable",
}
_LIFECYCLE = {
    "daemon started": "started",
    "reload": "reload",
    "terminating": "terminating",
    "exit status": "process_exit",
    "killed by signal": "process_killed",
    "bad command startup": "throttled",
    "reached its process limit": "process_limit",
    "starting": "starting",
    "stopping": "stopping",
    "refreshing": "refreshing",
    "waiting for": "stopping",
}
_SRS_RESULTS = {
    "rewritten as": ("forward", "rewritten"),
    "not rewritten:": ("forward", "not_rewritten"),
    "forwarded as": ("forward", "rewritten"),
    "reversed to": ("reverse", "rewritten"),
    "not reversed:": ("reverse", "not_rewritten"),
    "rejecting invalid SRS address": ("reverse", "rejected"),
}
_RSPAMD_ACTIONS = {
    a: a.replace(" ", "_")
    for a in (
        "no action",
        "greylist",
        "add header",
        "rewrite subject",
        "soft reject",
        "reject",
        "discard",
        "quarantine",
    )
}


def _enhanced_shape(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 3 and all(p.isdigit() for p in parts) and len(text) <= 9
