"""A real monitoring stack over a lab, for the end-to-end alert tests.

``mailprobe serve`` on the lab's config (short intervals), a real Prometheus on
``alerts/prometheus.yml`` with the rules of ``alerts/rules`` loaded, and a real
Alertmanager on ``alerts/alertmanager.yml``, whose receiver is a webhook on
127.0.0.1:9976 that :class:`AlertSink` records. The config files are the repository's
own (symlinked into a work folder, since Prometheus resolves the file_sd and rule paths
next to its config): no copies.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from monitor.lab import Lab
from monitor.lab.mailconfig import config_data
from tests.servers import LOOPBACK, ServeProcess, free_port

REPO = Path(__file__).resolve().parent.parent
ALERTS = REPO / "alerts"
SINK_PORT = 9976
"""The webhook port alerts/alertmanager.yml names; one sink per machine at a time."""
SINK_LOCK = Path("/tmp/mailprobe-alert-sink.lock")

CHECK_INTERVAL = 10.0
CHECK_TIMEOUT = 8.0
CANARY_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert in one webhook call, as Alertmanager sent it."""

    received: float
    external_url: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str


@dataclass
class AlertSink:
    """Records every webhook call Alertmanager makes, with the time it arrived."""

    notifications: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, payload: dict[str, Any]) -> None:
        now = time.time()
        with self.lock:
            for alert in payload.get("alerts", []):
                self.notifications.append(
                    Notification(
                        received=now,
                        external_url=str(payload.get("externalURL", "")),
                        status=str(alert.get("status", "")),
                        labels=dict(alert.get("labels", {})),
                        annotations=dict(alert.get("annotations", {})),
                        starts_at=str(alert.get("startsAt", "")),
                    )
                )

    def seen(self, external_url: str, since: float = 0.0) -> list[Notification]:
        with self.lock:
            return [
                n
                for n in self.notifications
                if n.external_url == external_url and n.received >= since
            ]


@contextmanager
def alert_sink(wait_for_lock: float = 1800.0) -> Iterator[AlertSink]:
    """Serve the webhook on 127.0.0.1:9976, holding a machine-wide lock on the port."""
    with SINK_LOCK.open("w") as lock_file:
        deadline = time.monotonic() + wait_for_lock
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{SINK_LOCK} stayed locked: another alert test run holds port {SINK_PORT}"
                    ) from None
                time.sleep(2)
        sink = AlertSink()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                sink.handle(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, SINK_PORT), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield sink
        finally:
            server.shutdown()
            server.server_close()


def lab_serve_config(lab: Lab) -> dict[str, Any]:
    """The lab's own config (``mailprobe lab config``) with short intervals.

    TLS quality is left out: it runs sslyze in its own process once a day and is not
    what this test exercises (docs/alerts.md says so). Canaries go every 30 s with a
    30 s deadline, so a lost one is known within a minute.
    """
    data = config_data(lab)
    data["defaults"] = {"interval": CHECK_INTERVAL, "timeout": CHECK_TIMEOUT}
    every = {"interval": CHECK_INTERVAL}
    smtp = data.get("smtp", {})
    for target in smtp.get("targets", []):
        target.pop("tls_quality", None)
        if "security" in target:  # hourly by default
            target["security"]["schedule"] = every
    for policy in smtp.get("mta_sts", []):  # hourly by default
        policy["schedule"] = every
    for route in data.get("canary", {}).get("routes", []):
        # A canary every 30 s; late after 30 s (the lab delivers in a few), lost 30 s later.
        route.update(schedule={"interval": CANARY_INTERVAL}, deadline=30, grace=30)
    return data


class Process:
    """A daemon with its output in a file, stopped with SIGTERM then SIGKILL."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log_path = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def wait_until(what: str, probe: Callable[[], bool], timeout: float, step: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)


class Stack:
    """mailprobe serve + Prometheus + Alertmanager over one lab, in ``work``."""

    def __init__(self, lab: Lab, work: Path, vantage: str) -> None:
        self.lab = lab
        self.work = work
        self.vantage = vantage
        self.processes: list[Process] = []
        self.serve: ServeProcess | None = None
        self.prometheus_url = ""
        self.alertmanager_url = ""
        self.started_at = 0.0

    def start(self) -> Stack:
        for binary in ("prometheus", "prometheus-alertmanager"):
            assert shutil.which(binary), f"{binary} is not installed (deploy/apt-packages.txt)"
        self.work.mkdir(parents=True, exist_ok=True)
        config = self.work / "mailprobe.yml"
        config.write_text(yaml.safe_dump(lab_serve_config(self.lab), sort_keys=False))
        self.serve = ServeProcess(config).start()
        self.serve.wait_listening(timeout=30)

        am_port = free_port()
        self.alertmanager_url = f"http://{LOOPBACK}:{am_port}"
        self.processes.append(
            Process(
                [
                    "prometheus-alertmanager",
                    f"--config.file={ALERTS / 'alertmanager.yml'}",
                    f"--storage.path={self.work / 'am-data'}",
                    f"--web.listen-address={LOOPBACK}:{am_port}",
                    f"--web.external-url={self.alertmanager_url}",
                    "--cluster.listen-address=",
                ],
                self.work / "alertmanager.log",
            )
        )

        prom_dir = self.work / "prometheus"
        (prom_dir / "targets").mkdir(parents=True)
        (prom_dir / "prometheus.yml").symlink_to(ALERTS / "prometheus.yml")
        (prom_dir / "rules").symlink_to(ALERTS / "rules")
        (prom_dir / "targets" / "mailprobe.yml").write_text(
            yaml.safe_dump([{"targets": [self.serve.listen], "labels": {"vantage": self.vantage}}])
        )
        (prom_dir / "targets" / "alertmanager.yml").write_text(
            yaml.safe_dump([{"targets": [f"{LOOPBACK}:{am_port}"]}])
        )
        prom_port = free_port()
        self.prometheus_url = f"http://{LOOPBACK}:{prom_port}"
        self.processes.append(
            Process(
                [
                    "prometheus",
                    f"--config.file={prom_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={prom_dir / 'data'}",
                    f"--web.listen-address={LOOPBACK}:{prom_port}",
                ],
                self.work / "prometheus.log",
            )
        )
        wait_until("Prometheus ready", lambda: self._ok(f"{self.prometheus_url}/-/ready"), 60)
        wait_until("Alertmanager ready", lambda: self._ok(f"{self.alertmanager_url}/-/ready"), 60)
        self.started_at = time.time()
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.serve is not None:
            self.serve.signal(15)
            try:
                self.serve.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.serve.stop()

    @staticmethod
    def _ok(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; the result vector (or [] on no data)."""
        answer = httpx.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10
        ).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def rule_groups(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus_url}/api/v1/rules", timeout=10).json()
        groups: list[dict[str, Any]] = answer["data"]["groups"]
        return groups

    def firing(self) -> list[dict[str, str]]:
        """Labels of the alerts Prometheus has firing now."""
        return [r["metric"] for r in self.query('ALERTS{alertstate="firing"}')]

    def scraped_once(self) -> bool:
        return bool(self.query('up{job="mailprobe"} == 1'))
