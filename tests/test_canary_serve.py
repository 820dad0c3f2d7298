"""Canaries in `mailprobe serve`: /metrics, and a kill -9 with canaries in flight."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from monitor.lab import Lab
from monitor.state import STATE_FILE_NAME
from tests.canary_helpers import canary_config
from tests.lab_fixture import broken
from tests.servers import ServeProcess
from tests.test_serve import eventually, metric, scrape, scrape_until

ROUTES = ("inbound-forward", "outbound-submission", "outbound-submission-465")


def ledger(state_dir: Path) -> dict[str, tuple[str, float | None]]:
    """id -> (state, finished_at) of every canary in the state file."""
    conn = sqlite3.connect(f"file:{state_dir / STATE_FILE_NAME}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT id, state, finished_at FROM canary_ledger").fetchall()
    finally:
        conn.close()
    return {str(i): (str(s), f) for i, s, f in rows}


def flush_queues(lab: Lab) -> None:
    """Ask the fleet's Postfix instances to retry their deferred mail now."""
    for instance in ("mx", "srs", "submission", "world"):
        subprocess.run(
            ["postqueue", "-c", str(lab.postfix_config_dir(instance)), "-f"],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip


def test_metrics_show_outcomes_reasons_and_verifications(lab: Lab, tmp_path: Path) -> None:
    config = canary_config(
        lab, tmp_path, tmp_path / "canary.key", deadline=15,
        routes={r: {"schedule": {"interval": 3600}} for r in ROUTES},
    )  # fmt: skip
    with broken(lab, "submission-sasl-down"), ServeProcess(config) as serve:
        serve.wait_listening()
        text = scrape_until(
            serve,
            lambda t: sum(
                metric(t, "mailprobe_canary_outcomes_total", route=r, outcome=o) or 0
                for r in ROUTES for o in ("delivered", "send_failed")
            ) >= 3,
            timeout=40,
            what="an outcome for each route",
        )  # fmt: skip
        serve.signal(signal.SIGTERM)
        serve.wait(timeout=15)
    forward = {"route": "inbound-forward"}
    assert metric(text, "mailprobe_canary_outcomes_total", outcome="delivered", **forward) == 1
    assert metric(text, "mailprobe_canary_outcomes_total", outcome="lost", **forward) == 0
    for route in ("outbound-submission", "outbound-submission-465"):
        labels = {"route": route}
        assert metric(text, "mailprobe_canary_outcomes_total", outcome="send_failed", **labels) == 1
        assert metric(text, "mailprobe_canary_send_failures_total", reason="auth", **labels) == 1
    assert metric(text, "mailprobe_canary_verification_ok", check="dkim_signature", **forward) == 1
    assert metric(text, "mailprobe_canary_verification_ok", check="return_path", **forward) == 1
    assert metric(text, "mailprobe_canary_mailbox_up", mailbox="world") == 1
    assert metric(text, "mailprobe_canary_delivery_latency_seconds_count", **forward) == 1
    assert (metric(text, "mailprobe_canary_last_delivered_timestamp_seconds", **forward) or 0) > (
        time.time() - 120
    )


def test_kill_9_with_canaries_in_flight_then_restart_ends_each_in_one_outcome(
    lab: Lab, tmp_path: Path
) -> None:
    config = canary_config(
        lab, tmp_path, tmp_path / "canary.key", deadline=120, grace=60,
        routes={r: {"schedule": {"interval": 3600}} for r in ROUTES},
    )  # fmt: skip
    state_dir = tmp_path / "state"
    with broken(lab, "world-defers-all"), ServeProcess(config) as first:
        first.wait_listening()
        scrape_until(
            first,
            lambda t: (
                sum(metric(t, "mailprobe_canary_in_flight", route=r) or 0 for r in ROUTES) >= 3
            ),
            timeout=30,
            what="three canaries in flight",
        )
        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
    in_flight = {i for i, (state, _) in ledger(state_dir).items() if state == "pending"}
    assert len(in_flight) == 3
    restarted = time.time()
    flush_queues(lab)
    with ServeProcess(config) as second:
        second.wait_listening()

        def all_done() -> dict[str, tuple[str, float | None]] | None:
            """The killed run's 3 and this run's own 3 canaries, every one finished: after
            that nothing changes (interval 3600 s), so a scrape and the ledger agree."""
            flush_queues(lab)
            rows = ledger(state_dir)
            finished = all(state != "pending" for state, _ in rows.values())
            return rows if len(rows) >= 6 and finished else None

        try:
            rows = eventually(all_done, timeout=120, what="every canary to end")
        except AssertionError:  # say which canaries are still open, and what serve logged
            raise AssertionError(f"{ledger(state_dir)}\n{second.log()[-3000:]}") from None
        text = scrape(second)
        second.signal(signal.SIGTERM)
        second.wait(timeout=15)
    for ident in in_flight:
        assert rows[ident][0] in ("delivered", "late"), rows[ident]
    # each canary finished by the second process is counted there once, and only once
    finished_here = sum(1 for s, f in rows.values() if s != "pending" and f and f >= restarted)
    counted = sum(
        metric(text, "mailprobe_canary_outcomes_total", route=r, outcome=o) or 0
        for r in ROUTES
        for o in ("delivered", "late", "lost", "bounced", "send_failed", "receiver_unreachable")
    )
    assert counted == finished_here >= 3


def outcome(text: str, route: str, name: str) -> float:
    return metric(text, "mailprobe_canary_outcomes_total", route=route, outcome=name) or 0


def test_faults_show_in_metrics(lab: Lab, tmp_path: Path) -> None:
    forward, submission = "inbound-forward", "outbound-submission"
    config = canary_config(
        lab, tmp_path, tmp_path / "canary.key", deadline=4, grace=2,
        routes={r: {"schedule": {"interval": 3600}} for r in ROUTES},
    )  # fmt: skip
    # bounced, filed as spam, DKIM failing: three faults at once, one per symptom
    with (
        broken(lab, "mx-rejects-all-as-spam"),
        broken(lab, "world-files-into-junk"),
        broken(lab, "dkim-key-mismatch"),
        ServeProcess(config) as serve,
    ):
        serve.wait_listening()
        text = scrape_until(
            serve,
            lambda t: outcome(t, forward, "bounced") + outcome(t, submission, "delivered") == 2,
            timeout=30,
            what="bounced and delivered",
        )
        serve.signal(signal.SIGTERM)
        serve.wait(timeout=15)
    assert metric(text, "mailprobe_canary_last_in_junk", route=submission) == 1
    assert metric(text, "mailprobe_canary_verification_ok", route=submission,
                  check="dkim_signature") == 0  # fmt: skip
    assert metric(text, "mailprobe_canary_verification_ok", route=submission,
                  check="authres_dkim") == 0  # fmt: skip
    # late (overdue) first, then lost
    with broken(lab, "stop-postfix-srs"), ServeProcess(config) as serve:
        serve.wait_listening()
        scrape_until(
            serve, lambda t: metric(t, "mailprobe_canary_overdue", route=forward) == 1,
            timeout=20, what="the forward overdue",
        )  # fmt: skip
        text = scrape_until(
            serve, lambda t: outcome(t, forward, "lost") == 1, timeout=20, what="it lost"
        )
        serve.signal(signal.SIGTERM)
        serve.wait(timeout=15)
    assert metric(text, "mailprobe_canary_overdue", route=forward) == 0
    # the mailbox down: receiver_unreachable, not lost
    with broken(lab, "stop-dovecot"), ServeProcess(config) as serve:
        serve.wait_listening()
        text = scrape_until(
            serve, lambda t: outcome(t, forward, "receiver_unreachable") == 1,
            timeout=20, what="receiver_unreachable",
        )  # fmt: skip
        serve.signal(signal.SIGTERM)
        serve.wait(timeout=15)
    assert metric(text, "mailprobe_canary_mailbox_up", mailbox="world") == 0
    assert outcome(text, forward, "lost") == 0
