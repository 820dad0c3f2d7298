"""End to end: lab faults raise the right alert, with its reason, at a real Alertmanager.

The lab, ``mailprobe serve`` over its config (checks every 10 s), a real Prometheus on
``alerts/prometheus.yml`` with ``alerts/rules`` loaded (scrape and evaluation every 5 s)
and a real Alertmanager on ``alerts/alertmanager.yml`` whose webhook receiver this test
runs (tests/alert_stack.py). Faults are broken in batches of independent ones; each must
reach the receiver as its alert, with the check's reason in the description, and must
resolve once healed. Two batches are alone on purpose: the resolver down and a bogus
zone each fail dozens of checks, and the receiver must get one alert naming the cause.

A second lab with its own stack stays healthy meanwhile (the soak): at the end, ten
minutes of it must have fired no alert at all.

Break-to-firing times are printed (``-s``) and recorded in docs/alerts.md.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.lab import Lab, LabError
from tests.alert_stack import AlertSink, Notification, Stack, alert_sink, wait_until
from tests.lab_fixture import free_net, lab_unavailable, new_lab_dir, submit

REPO = Path(__file__).resolve().parent.parent
SOAK_SECONDS = 600.0
FIRE_TIMEOUT = 240.0
RESOLVE_TIMEOUT = 420.0
"""A deferral rate clears 5 minutes after the last deferral, and queued mail retries."""


@dataclass(frozen=True)
class Expect:
    """A fault and the alert it must raise: name, label values, words of the reason."""

    fault: str
    alert: str
    labels: dict[str, str]
    reason: str


BATCHES: list[list[Expect]] = [
    [
        Expect(
            "spf-missing-srs", "MailSPFCheckFailing", {"target": "{domain}"}, "does not authorise"
        ),
        Expect(
            "dkim-record-removed",
            "MailDKIMCheckFailing",
            {"target": "lab._domainkey.{domain}"},
            "no DKIM key",
        ),
        Expect(
            "dmarc-record-removed",
            "MailDMARCCheckFailing",
            {"target": "{domain}"},
            "no DMARC record",
        ),
        Expect("ptr-removed", "MailPTRCheckFailing", {"target": "srs.{domain}"}, "no PTR record"),
        Expect(
            "srs-listed-on-dnsbl", "MailListedOnBlocklist", {"target": "srs.{domain}"}, "listed on"
        ),
        Expect("mx-cert-expired", "MailSMTPCertificateInvalid", {"target": "mx"}, "expired"),
        Expect(
            "submission-465-wrong-name",
            "MailSMTPCertificateInvalid",
            {"target": "submission-465"},
            "PKIX",
        ),
        Expect(
            "stop-mta-sts",
            "MailMTASTSPolicyUnreachable",
            {"target": "{domain}"},
            "cannot be fetched",
        ),
        # A rate over 5 minutes: it resolves 5 minutes after the last deferral, so it goes
        # first and the other batches run while it clears.
        Expect("world-defers-all", "PostfixDeferralsRising", {"service": "submission"}, "deferred"),
    ],
    [
        Expect(
            "tlsa-removed",
            "MailTLSACheckFailing",
            {"target": "_25._tcp.mx.{domain}"},
            "no TLSA record",
        ),
        Expect("mx-record-removed", "MailMXCheckFailing", {"target": "{domain}"}, "no MX record"),
        Expect(
            "srs-cert-rotated-tlsa-stale",
            "MailDANEFailing",
            {"target": "srs"},
            "does not match the served key",
        ),
        Expect("mx-open-relay", "MailOpenRelay", {"target": "mx"}, "open relay"),
        Expect(
            "mx-bare-lf-accepted",
            "MailSMTPSecurityExposed",
            {"target": "mx", "check": "bare_lf"},
            "LF",
        ),
        Expect(
            "submission-auth-before-tls",
            "MailSMTPSecurityExposed",
            {"target": "submission-587", "check": "auth_before_tls"},
            "AUTH",
        ),
    ],
    [
        Expect("spf-too-many-lookups", "MailSPFCheckFailing", {"target": "{domain}"}, "lookups"),
        Expect(
            "dkim-key-mismatch",
            "MailDKIMCheckFailing",
            {"target": "lab._domainkey.{domain}"},
            "differs from the signer",
        ),
    ],
]
# After everything above has cleared: stopped servers defer the canaries' mail, which
# would keep the deferral and canary alerts of the batches above from clearing.
CANARY_BATCH: list[Expect] = [
    Expect("stop-postfix-world", "MailSMTPEndpointDown", {"target": "world"}, "refused"),
    Expect("stop-postfix-mx", "MailSMTPEndpointDown", {"target": "mx"}, "refused"),
    Expect(
        "submission-sasl-down",
        "MailCanaryNotDelivered",
        {"target": "outbound-submission"},
        "auth",
    ),
]
ALONE: list[Expect] = [
    Expect("dnssec-signatures-expired", "MailDNSSECBogus", {}, "DNSSEC-bogus"),
    Expect("stop-unbound", "MailDNSResolutionFailing", {}, "refused"),
]


@dataclass
class Outcome:
    expect: Expect
    broken_at: float
    fired_at: float | None = None
    healed_at: float | None = None
    resolved_at: float | None = None
    description: str = ""
    others: list[str] = field(default_factory=list)


def _matches(n: Notification, expect: Expect, lab: Lab) -> bool:
    if n.labels.get("alertname") != expect.alert:
        return False
    return all(n.labels.get(k) == v.format(domain=lab.domain) for k, v in expect.labels.items())


def _started(n: Notification) -> float:
    """startsAt as Unix time (Go writes nanoseconds; Python parses microseconds)."""
    text = n.starts_at.rstrip("Z")
    if "." in text:
        head, fraction = text.split(".", 1)
        text = f"{head}.{fraction[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _key(n: Notification) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(n.labels.items()))


@pytest.fixture(scope="module")
def sink() -> Iterator[AlertSink]:
    with alert_sink() as the_sink:
        yield the_sink


@pytest.fixture(scope="module")
def soak(sink: AlertSink, lab: Lab) -> Iterator[Stack]:
    """A second, healthy lab with its own stack, from the start of this module."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    root = new_lab_dir()
    soak_lab = Lab(root, net=free_net(skip=7))
    for attempt in range(1, 4):
        try:
            soak_lab.up()
            break
        except LabError as exc:
            if "in use" not in str(exc) or attempt == 3:
                raise
            soak_lab = Lab(root, net=free_net(skip=7 + attempt))
    stack = Stack(soak_lab, root / "stack", vantage="soak")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        soak_lab.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(
    sink: AlertSink, soak: Stack, lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    the_stack = Stack(lab, Path(tmp_path_factory.mktemp("alert-stack")), vantage="lab")
    try:
        the_stack.start()
        wait_until("first scrape of mailprobe", the_stack.scraped_once, 60)
        # Mail after the first scrape, so rates and delay histograms see it change.
        for n in range(3):
            submit(lab, 587, f"e2e warm-up {n}")
        wait_until(
            "every check has run",
            lambda: not the_stack.query("mailprobe_check_last_run_timestamp_seconds == 0"),
            90,
        )
        yield the_stack
    finally:
        the_stack.stop()


def _run_batch(
    lab: Lab, stack: Stack, sink: AlertSink, batch: list[Expect], during: list[Outcome]
) -> list[Outcome]:
    """Break every fault of the batch; wait for each alert; heal; return the outcomes.

    ``during``: outcomes of the previous batch, still resolving, polled meanwhile.
    """
    outcomes = []
    for expect in batch:
        lab.break_fault(expect.fault)
        outcomes.append(Outcome(expect, time.time()))
    if any(e.fault == "world-defers-all" for e in batch):
        for n in range(6):  # deferrals need mail: the submission host queues it for the world
            submit(lab, 587, f"e2e deferred {n}")
    try:
        deadline = time.monotonic() + FIRE_TIMEOUT
        while time.monotonic() < deadline:
            _poll(lab, stack, sink, outcomes + during)
            if all(o.fired_at for o in outcomes):
                break
            time.sleep(2)
    finally:
        for outcome in outcomes:
            lab.heal_fault(outcome.expect.fault)
            outcome.healed_at = time.time()
    missing = [o.expect for o in outcomes if o.fired_at is None]
    assert not missing, _report(stack, sink, f"no alert within {FIRE_TIMEOUT:.0f} s", missing)
    return outcomes


def _poll(lab: Lab, stack: Stack, sink: AlertSink, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        for n in sink.seen(stack.alertmanager_url, since=outcome.broken_at):
            if not _matches(n, outcome.expect, lab):
                continue
            if (
                n.status == "firing"
                and outcome.fired_at is None
                and _started(n) >= outcome.broken_at
            ):
                outcome.fired_at = n.received
                outcome.description = n.annotations.get("description", "")
            if (
                n.status == "resolved"
                and outcome.healed_at is not None
                and n.received >= outcome.healed_at
                and outcome.resolved_at is None
            ):
                outcome.resolved_at = n.received


def _wait_resolved(lab: Lab, stack: Stack, sink: AlertSink, outcomes: list[Outcome]) -> None:
    deadline = time.monotonic() + RESOLVE_TIMEOUT
    while time.monotonic() < deadline:
        _poll(lab, stack, sink, outcomes)
        if all(o.resolved_at for o in outcomes):
            return
        time.sleep(2)
    missing = [o.expect for o in outcomes if o.resolved_at is None]
    raise AssertionError(_report(stack, sink, "not resolved after healing", missing))


def _report(stack: Stack, sink: AlertSink, what: str, expects: list[Expect]) -> str:
    seen = [
        f"{n.status} {n.labels} {n.annotations.get('description', '')[:160]}"
        for n in sink.seen(stack.alertmanager_url)[-40:]
    ]
    firing = [f"{a['alertname']} {a}" for a in stack.firing()]
    return (
        f"{what}: {[e.fault + ' -> ' + e.alert for e in expects]}\n"
        "received:\n  " + "\n  ".join(seen) + "\nfiring in Prometheus:\n  " + "\n  ".join(firing)
    )


def _dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel or variable, PromQL with the variables set to 'all')."""
    out = []
    for path in sorted((REPO / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for variable in board["templating"]["list"]:
            found = re.fullmatch(r"label_values\((.+), (\w+)\)", str(variable.get("query", "")))
            if variable["type"] == "query" and found:
                out.append((path.name, f"${variable['name']}", f"{found[1]}"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], re.sub(r"\$\w+", ".*", target["expr"])))
    return out


def test_every_dashboard_panel_query_returns_data(stack: Stack) -> None:
    """On the healthy lab after some mail: each query answers at least one number."""
    queries = _dashboard_queries()
    assert len(queries) >= 30
    empty: list[tuple[str, str, str]] = []

    def all_answer() -> bool:
        empty.clear()
        for board, title, expr in queries:
            values = [r["value"][1] for r in stack.query(expr)]
            if not any(v != "NaN" for v in values):
                empty.append((board, title, expr))
        return not empty

    try:
        wait_until("every panel query answers", all_answer, 180, step=10)
    except AssertionError:
        raise AssertionError(f"panel queries without data: {empty}") from None


def test_lab_faults_raise_their_alert_with_the_reason_and_resolve(
    lab: Lab, stack: Stack, sink: AlertSink
) -> None:
    assert not stack.firing(), "alerts fire on the healthy lab before any fault"
    results: list[Outcome] = []
    for batch in BATCHES:
        # The previous batches' alerts resolve while this one is broken; no alert of a
        # batch has the labels of one in the next, so each resolution is its own.
        unresolved = [o for o in results if o.resolved_at is None]
        results += _run_batch(lab, stack, sink, batch, unresolved)
    # Everything clears before the canary batch (the faults above delay canaries too) and
    # before the two faults that must page alone.
    _wait_resolved(lab, stack, sink, results)
    canaries = _run_batch(lab, stack, sink, CANARY_BATCH, [])
    _wait_resolved(lab, stack, sink, canaries)
    results += canaries

    for expect in ALONE:
        before = {_key(n) for n in sink.seen(stack.alertmanager_url) if n.status == "firing"}
        (outcome,) = _run_batch(lab, stack, sink, [expect], [])
        results.append(outcome)
        # One page for the cause: nothing else new reached the receiver, although
        # Prometheus has many alerts firing behind the inhibition.
        new = {
            n.labels["alertname"]
            for n in sink.seen(stack.alertmanager_url, since=outcome.broken_at)
            if n.status == "firing" and _key(n) not in before
        }
        assert new == {expect.alert}, _report(stack, sink, f"more than one page: {new}", [expect])
        outcome.others = sorted(new - {expect.alert})
        _wait_resolved(lab, stack, sink, [outcome])

    rows = ["| fault | alert | break to firing | heal to resolved |", "|---|---|---|---|"]
    for o in results:
        assert o.expect.reason.lower() in o.description.lower(), (o.expect, o.description)
        assert o.fired_at is not None and o.resolved_at is not None and o.healed_at is not None
        rows.append(
            f"| `{o.expect.fault}` | {o.expect.alert} | {o.fired_at - o.broken_at:.0f} s"
            f" | {o.resolved_at - o.healed_at:.0f} s |"
        )
    print("\n" + "\n".join(rows))
    assert len(results) >= 15


def test_a_healthy_lab_fires_no_alert_for_ten_minutes(soak: Stack, sink: AlertSink) -> None:
    """Runs last: the soak stack started with this module, so its ten minutes are mostly
    over when the fault test ends."""
    wait_until("soak stack scraped", soak.scraped_once, 60)
    started = soak.started_at
    remaining = started + SOAK_SECONDS - time.time()
    if remaining > 0:
        time.sleep(remaining)
    window = f"{int(time.time() - started)}s"
    # Checks ran all along and rules were evaluated: the soak is not vacuous.
    runs = soak.query(f"sum(increase(mailprobe_check_runs_total[{window}]))")
    assert runs and float(runs[0]["value"][1]) > 500, runs
    assert len(soak.rule_groups()) >= 6, "the rule files were not loaded"
    fired = soak.query(f'count_over_time(ALERTS{{alertstate="firing"}}[{window}])')
    assert fired == [], [r["metric"] for r in fired]
    assert sink.seen(soak.alertmanager_url) == [], "the soak's Alertmanager notified"
