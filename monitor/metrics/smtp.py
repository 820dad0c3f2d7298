"""Metrics of the SMTP session checks (``check="session_ipv4"``/``"session_ipv6"``).

Each session check also has the per-check metrics of :mod:`monitor.metrics.checks`.
The families here are labelled ``target`` (the configured name), ``port`` and
``family`` (``ipv4``/``ipv6``), plus ``phase``, ``state``, ``extension`` or TLS
``version``/``cipher`` where named: all bounded by the config or by fixed sets (MX host
names found at run time and addresses never become labels).  ``/probe`` renders the
same families for its one target, without the ``target`` label (Prometheus adds
``instance``).  docs/smtp.md lists them with what each means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporters.result import FactValue, Status
from exporters.smtp.dane import DANE_STATES, ROLLOVER_SCHEMES
from exporters.smtp.session import EXTENSIONS, PHASES
from exporters.smtp.tlsfacts import PkixState
from monitor.results import ResultsStore

SESSION_PREFIX = "session_"
PKIX_STATES = tuple(s.value for s in PkixState)


@dataclass(frozen=True, slots=True)
class SessionRow:
    labels: tuple[str, ...]
    """Values of the base labels (``target, port, family`` or ``port, family``)."""
    up: bool
    facts: Mapping[str, FactValue]


def _gauge(name: str, doc: str, base: Sequence[str], *extra: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=[*base, *extra])


def session_families(rows: Iterable[SessionRow], base: Sequence[str]) -> list[Metric]:
    """The SMTP session metric families for ``rows``, labelled ``base`` first."""
    up = _gauge("mailprobe_smtp_up", "1 if the session and its verdicts passed (ok or warn).", base)
    durations = _gauge(
        "mailprobe_smtp_phase_duration_seconds",
        "How long each phase of the last session took (phases that ran).",
        base,
        "phase",
    )
    failed = _gauge(
        "mailprobe_smtp_failed_phase",
        "1 for the phase the last session failed in, 0 for the others; all 0 when it passed.",
        base,
        "phase",
    )
    extension = _gauge(
        "mailprobe_smtp_extension_advertised",
        "1 if EHLO advertised the extension (STARTTLS from the first EHLO, the rest from the "
        "EHLO after TLS), else 0.",
        base,
        "extension",
    )
    size = _gauge("mailprobe_smtp_size_limit_bytes", "Message size limit from EHLO SIZE.", base)
    tls_info = _gauge(
        "mailprobe_smtp_tls_info",
        "Always 1; labels carry the negotiated TLS version and cipher.",
        base,
        "version",
        "cipher",
    )
    # In bits, as key sizes are always given (promtool's lint wants no "_bits" unit).
    key_bits = _gauge(
        "mailprobe_smtp_tls_key_size",
        "Size of the server's public key in bits (RSA modulus, EC curve).",
        base,
    )
    not_after = _gauge(
        "mailprobe_smtp_cert_not_after_timestamp_seconds",
        "Unix time the served certificate expires.",
        base,
    )
    pkix = _gauge(
        "mailprobe_smtp_pkix_state",
        "1 for the PKIX verdict on the served chain, 0 for the other states.",
        base,
        "state",
    )
    dane = _gauge(
        "mailprobe_smtp_dane_state",
        "1 for the DANE (RFC 7672) verdict, 0 for the other states.",
        base,
        "state",
    )
    scheme = _gauge(
        "mailprobe_smtp_dane_rollover_scheme",
        "1 for the TLSA rollover scheme seen (current+next, ee+ta, none), 0 for the others.",
        base,
        "scheme",
    )
    next_ok = _gauge(
        "mailprobe_smtp_dane_next_matches",
        "1 if a published TLSA record matches the configured next certificate or key.",
        base,
    )
    for row in rows:
        labels = list(row.labels)
        facts = row.facts
        up.add_metric(labels, 1.0 if row.up else 0.0)
        failed_phase = facts.get("failed_phase", facts.get("timeout_phase"))
        for phase in PHASES:
            seconds = facts.get(f"{phase}_seconds")
            if isinstance(seconds, int | float):
                durations.add_metric([*labels, phase], float(seconds))
            failed.add_metric([*labels, phase], 1.0 if failed_phase == phase else 0.0)
        for name in EXTENSIONS:
            value = facts.get(f"ext_{name}")
            if isinstance(value, bool):
                extension.add_metric([*labels, name], float(value))
        _number(size, labels, facts.get("size_limit_bytes"))
        if isinstance(facts.get("tls_version"), str):
            tls_info.add_metric(
                [*labels, str(facts["tls_version"]), str(facts.get("tls_cipher", ""))], 1.0
            )
        _number(key_bits, labels, facts.get("tls_key_bits"))
        _number(not_after, labels, facts.get("cert_not_after"))
        _states(pkix, labels, facts.get("pkix"), PKIX_STATES)
        _states(dane, labels, facts.get("dane"), DANE_STATES)
        _states(scheme, labels, facts.get("dane_rollover_scheme"), ROLLOVER_SCHEMES)
        _number(next_ok, labels, facts.get("dane_next_matches"))
    return [
        up,
        durations,
        failed,
        extension,
        size,
        tls_info,
        key_bits,
        not_after,
        pkix,
        dane,
        scheme,
        next_ok,
    ]


def _number(family: GaugeMetricFamily, labels: list[str], value: FactValue | None) -> None:
    if isinstance(value, int | float | bool):
        family.add_metric(labels, float(value))


def _states(
    family: GaugeMetricFamily, labels: list[str], value: FactValue | None, states: Sequence[str]
) -> None:
    if isinstance(value, str):
        for state in states:
            family.add_metric([*labels, state], 1.0 if value == state else 0.0)


class SmtpSessionCollector(Collector):
    """The session families for every scheduled session check, from the results store.

    ``ports`` maps target names to their configured port: a run cut by the check's
    deadline carries no facts, and its series must keep the same labels.
    """

    def __init__(self, store: ResultsStore, ports: Callable[[], Mapping[str, int]]) -> None:
        self._store = store
        self._ports = ports

    def collect(self) -> Iterable[Metric]:
        ports = self._ports()
        rows = []
        for record in self._store.snapshot():
            if record.kind != "smtp" or not record.check.startswith(SESSION_PREFIX):
                continue
            last = record.last
            facts = last.facts if last is not None else {}
            port = facts.get("port", ports.get(record.target, 0))
            family = record.check.removeprefix(SESSION_PREFIX)
            up = last is not None and last.status in (Status.OK, Status.WARN)
            rows.append(SessionRow((record.target, str(port), family), up, facts))
        yield from session_families(rows, ("target", "port", "family"))
