"""``mailprobe serve`` as a real process against real (misbehaving) loopback servers."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import httpx
import pytest
import yaml
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import (
    LOOPBACK,
    ServeProcess,
    SilentServer,
    SmtpServer,
    TlsFiles,
)

T = TypeVar("T")


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def smtp_target(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "host": LOOPBACK, "port": port, "tls": "none", **extra}


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` with ``labels`` (a subset), or None."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call ``probe`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def scrape(serve: ServeProcess) -> str:
    return httpx.get(f"http://{serve.listen}/metrics", timeout=5).text


def scrape_until(
    serve: ServeProcess, predicate: Callable[[str], bool], timeout: float, what: str
) -> str:
    """Scrape until ``predicate`` holds for the exposition text; return that text."""
    return eventually(lambda: text if predicate(text := scrape(serve)) else None, timeout, what)


def runs(text: str, target: str, status: str) -> float:
    return metric(text, "mailprobe_check_runs_total", target=target, status=status) or 0.0


def stop_cleanly(serve: ServeProcess, grace: float) -> str:
    started = time.monotonic()
    serve.signal(signal.SIGTERM)
    assert serve.wait(timeout=grace + 5) == 0
    assert time.monotonic() - started < grace + 2
    log = serve.log()
    assert "Traceback" not in log
    assert "msg=stopped" in log
    return log


def test_metrics_readiness_and_a_hanging_check(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path / "smtp-tls", "localhost")
    with SmtpServer(tls=tls) as good, SilentServer() as hang:
        config = write_config(
            tmp_path / "mailprobe.yml",
            {
                "defaults": {"interval": 1, "timeout": 2},
                "smtp": {
                    "ca_file": str(tls.ca_file),
                    "targets": [
                        smtp_target("good", good.port, tls="starttls", server_name="localhost"),
                        smtp_target("hang", hang.port, schedule={"interval": 2, "timeout": 1}),
                    ],
                },
            },
        )
        with ServeProcess(config) as serve:
            serve.wait_listening()
            base = f"http://{serve.listen}"
            assert httpx.get(f"{base}/-/healthy", timeout=5).status_code == 200
            # The hanging check cannot finish before its 1 s timeout: not ready yet.
            assert httpx.get(f"{base}/-/ready", timeout=5).status_code == 503
            eventually(
                lambda: httpx.get(f"{base}/-/ready", timeout=5).status_code == 200,
                8,
                "/-/ready to turn 200 after the first round",
            )

            first = scrape(serve)
            assert metric(first, "mailprobe_check_up", target="good") == 1.0
            assert metric(first, "mailprobe_check_status", target="good", status="ok") == 1.0
            assert metric(first, "mailprobe_check_up", target="hang") == 0.0
            assert metric(first, "mailprobe_check_status", target="hang", status="fail") == 1.0
            assert metric(first, "mailprobe_build_info") == 1.0
            assert metric(first, "mailprobe_config_reload_failures_total") == 0.0
            assert metric(first, "mailprobe_config_last_reload_successful") == 1.0

            # The hang keeps timing out and the good check keeps running beside it.
            later = scrape_until(
                serve,
                lambda t: (
                    runs(t, "hang", "fail") >= runs(first, "hang", "fail") + 1
                    and runs(t, "good", "ok") >= runs(first, "good", "ok") + 2
                ),
                8,
                "both checks to run again",
            )
            assert runs(later, "good", "fail") == 0.0
            assert runs(later, "hang", "ok") == 0.0

            page = httpx.get(f"{base}/", timeout=5)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "banner: no complete answer" in page.text
            assert good.sessions_completed >= 2

            zipped = httpx.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5)
            assert zipped.headers["content-encoding"] == "gzip"
            assert zipped.headers["content-type"] == CONTENT_TYPE_LATEST
            assert metric(zipped.text, "mailprobe_build_info") == 1.0

            stop_cleanly(serve, grace=5)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_finds_the_exposition_clean(tmp_path: Path) -> None:
    with SmtpServer() as good:
        config = write_config(
            tmp_path / "mailprobe.yml",
            {"defaults": {"interval": 1}, "smtp": {"targets": [smtp_target("good", good.port)]}},
        )
        with ServeProcess(config) as serve:
            serve.wait_listening()
            text = scrape_until(serve, lambda t: runs(t, "good", "ok") >= 1, 5, "a first run")
            lint = subprocess.run(
                ["promtool", "check", "metrics"],
                input=text,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert lint.returncode == 0, lint.stdout + lint.stderr
            assert lint.stdout.strip() == "" and lint.stderr.strip() == ""
            stop_cleanly(serve, grace=5)


def test_a_check_that_raises_is_error_and_others_keep_running(tmp_path: Path) -> None:
    # A CA file that is not PEM makes the STARTTLS check raise (it cannot judge PKIX)
    # before it talks to the server; the plain-text check against the same server is
    # unaffected.
    bad_ca = tmp_path / "not-a-ca.pem"
    bad_ca.write_text("this is not a certificate\n", encoding="utf-8")
    with SmtpServer() as server:
        config = write_config(
            tmp_path / "mailprobe.yml",
            {
                "defaults": {"interval": 1, "timeout": 2},
                "smtp": {
                    "ca_file": str(bad_ca),
                    "targets": [
                        smtp_target("raises", server.port, tls="starttls"),
                        smtp_target("plain", server.port),
                    ],
                },
            },
        )
        with ServeProcess(config) as serve:
            serve.wait_listening()
            text = scrape_until(
                serve,
                lambda t: runs(t, "raises", "error") >= 2 and runs(t, "plain", "ok") >= 2,
                8,
                "two runs of each check",
            )
            assert metric(text, "mailprobe_check_status", target="raises", status="error") == 1.0
            assert metric(text, "mailprobe_check_up", target="plain") == 1.0
            page = httpx.get(f"http://{serve.listen}/", timeout=5).text
            assert "holds no PEM certificate" in page
            stop_cleanly(serve, grace=5)


def test_sighup_keeps_old_config_when_broken_and_applies_a_good_one(tmp_path: Path) -> None:
    with SmtpServer() as server:
        good = {
            "defaults": {"interval": 1},
            "smtp": {"targets": [smtp_target("first", server.port)]},
        }
        config = write_config(tmp_path / "mailprobe.yml", good)
        with ServeProcess(config) as serve:
            serve.wait_listening()
            eventually(lambda: runs(scrape(serve), "first", "ok") >= 1, 5, "a first run")

            broken = {"defaults": {"interval": 1}, "smtp": {"targets": [{"name": "x", "prot": 1}]}}
            write_config(config, broken)
            serve.signal(signal.SIGHUP)
            text = scrape_until(
                serve,
                lambda t: metric(t, "mailprobe_config_reload_failures_total") == 1,
                5,
                "the reload failure to be counted",
            )
            assert metric(text, "mailprobe_config_last_reload_successful") == 0.0
            before = runs(text, "first", "ok")
            eventually(
                lambda: runs(scrape(serve), "first", "ok") > before, 5, "the old check to run on"
            )
            log = serve.log()
            assert "config reload failed" in log
            assert "smtp.targets[0].prot" in log

            good["smtp"]["targets"].append(smtp_target("second", server.port))
            write_config(config, good)
            serve.signal(signal.SIGHUP)
            text = scrape_until(
                serve, lambda t: runs(t, "second", "ok") >= 1, 5, "the new check to run"
            )
            assert metric(text, "mailprobe_config_last_reload_successful") == 1.0
            assert metric(text, "mailprobe_config_reload_failures_total") == 1.0
            assert metric(text, "mailprobe_check_up", target="first") == 1.0
            assert 'msg="config reloaded"' in serve.log()
            stop_cleanly(serve, grace=5)


def test_web_tls_and_basic_auth(tmp_path: Path) -> None:
    password = "correct horse battery"
    tls = TlsFiles.create(tmp_path / "web-tls", LOOPBACK)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()
    config = write_config(
        tmp_path / "mailprobe.yml",
        {
            "web": {
                "tls_server_config": {
                    "cert_file": str(tls.cert_file),
                    "key_file": str(tls.key_file),
                },
                "basic_auth_users": {"prometheus": hashed},
            }
        },
    )
    client_context = ssl.create_default_context(cafile=str(tls.ca_file))
    # An unknown user costs serve two bcrypt operations (a stand-in hash made once, then
    # checked), at cost 6 like the configured hash: generous timeouts for a busy machine.
    with ServeProcess(config) as serve, httpx.Client(verify=client_context, timeout=30) as client:
        serve.wait_listening()
        base = f"https://{serve.listen}"
        right = client.get(f"{base}/metrics", auth=("prometheus", password))
        assert right.status_code == 200
        assert metric(right.text, "mailprobe_build_info") == 1.0
        again = client.get(f"{base}/-/ready", auth=("prometheus", password))
        assert again.status_code == 200

        for auth in (("prometheus", "wrong"), ("nobody", password), None):
            denied = client.get(f"{base}/metrics", auth=auth)
            assert denied.status_code == 401, auth
            assert denied.headers["www-authenticate"].startswith("Basic ")
        assert client.get(f"{base}/-/healthy").status_code == 401

        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{serve.listen}/metrics", auth=("prometheus", password), timeout=5)

        log = stop_cleanly(serve, grace=5)
        assert "tls=True" in log and "basic_auth=True" in log
        assert password not in log and hashed not in log


def test_sigterm_cancels_a_run_still_going_at_the_end_of_the_grace_period(
    tmp_path: Path,
) -> None:
    with SilentServer() as hang:
        config = write_config(
            tmp_path / "mailprobe.yml",
            {
                "smtp": {
                    "targets": [
                        smtp_target("hang", hang.port, schedule={"interval": 0.5, "timeout": 30})
                    ]
                }
            },
        )
        with ServeProcess(config, grace=1) as serve:
            serve.wait_listening()
            eventually(
                lambda: "maximum number of running instances reached" in serve.log(),
                5,
                "a due run to be skipped while the first one hangs",
            )
            # Runs were due every 0.5 s, but the server saw only the one in flight.
            assert hang.connections == 1
            log = stop_cleanly(serve, grace=1)
            assert "in_flight=1" in log
            assert "cancelled=1" in log


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mailprobe.yml", {})
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*_serve_command(config), "--listen", f"{LOOPBACK}:{port}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert done.returncode == 3
    assert "cannot listen" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_invalid_config_does_not_start(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mailprobe.yml", {"smtp": {"targets": [{"nmae": "x"}]}})
    done = subprocess.run(_serve_command(config), capture_output=True, text=True, timeout=20)
    assert done.returncode == 3
    assert "smtp.targets[0].nmae" in done.stderr
    assert "Traceback" not in done.stderr


def _serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "monitor", "serve", "--config", str(config)]
