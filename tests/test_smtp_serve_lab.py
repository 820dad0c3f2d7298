"""The SMTP prober through its faces, against the lab: `mailprobe run`, `/metrics`,
`/probe` (with its debug view), and a real Prometheus scraping `/probe` with a
blackbox-style relabelling config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.lab import Lab
from monitor.lab.mailconfig import config_data
from tests.lab_fixture import broken
from tests.servers import LOOPBACK, ServeProcess, free_port

REPO = Path(__file__).resolve().parent.parent
MODULE = "smtp_starttls"


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def smtp_config(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = config_data(lab)
    # Only what this module tests: the SMTP targets (and the DNS section, for the resolver).
    data = {
        "defaults": {"interval": 1, "timeout": 5},
        "dns": {"resolvers": data["dns"]["resolvers"]},
        "smtp": {
            **data["smtp"],
            "modules": {MODULE: {"tls": "starttls", "dane": "required", "timeout": 5}},
        },
    }
    path = tmp_path_factory.mktemp("smtp-serve") / "mailprobe.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def serve(smtp_config: Path) -> Iterator[ServeProcess]:
    with ServeProcess(smtp_config) as process:
        process.wait_listening()
        yield process


def scrape(serve: ServeProcess) -> str:
    return httpx.get(f"http://{serve.listen}/metrics", timeout=5).text


def run_smtp(config: Path, target: str) -> dict[str, Any]:
    args = ["--config", str(config), "--only", "smtp", "--target", target, "--format", "json"]
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    results = json.loads(done.stdout)["results"]
    sessions = [r for r in results if r["check"] == "session_ipv4"]
    assert len(sessions) == 1, done.stdout + done.stderr
    return dict(sessions[0])


FAULTS = [
    ("stop-postfix-mx", "mx", "connect", "connection refused", {}),
    ("mx-cert-expired", "mx", "starttls", "expired", {"pkix": "expired", "dane": "verified"}),
    ("submission-465-wrong-name", "submission-465", "tls", "PKIX", {"pkix": "name_mismatch"}),
    ("srs-cert-rotated-tlsa-stale", "srs", "starttls", "does not match", {"dane": "mismatch"}),
    ("tlsa-removed", "mx", "tlsa", "no TLSA record", {"dane": "off"}),
    ("dnssec-signatures-expired", "mx", "tlsa", "bogus", {"dane": "bogus"}),
]


@pytest.mark.parametrize(("fault", "target", "phase", "words", "states"), FAULTS)
def test_fault_in_run_and_in_metrics(
    lab: Lab,
    smtp_config: Path,
    serve: ServeProcess,
    fault: str,
    target: str,
    phase: str,
    words: str,
    states: dict[str, str],
) -> None:
    labels = {"target": target, "family": "ipv4"}
    with broken(lab, fault):
        result = wait_for(
            lambda: (r := run_smtp(smtp_config, target))["status"] == "fail" and r,
            20,
            f"{fault}: mailprobe run fails {target}",
        )
        assert result["reason"].startswith(f"{phase}: ") and words in result["reason"], result
        text = wait_for(
            lambda: (
                (t := scrape(serve))
                and value(t, "mailprobe_smtp_failed_phase", phase=phase, **labels) == 1.0
                and t
            ),
            20,
            f"{fault}: /metrics shows {target} failed in {phase}",
        )
        assert value(text, "mailprobe_smtp_up", **labels) == 0.0
        assert value(text, "mailprobe_check_up", kind="smtp", target=target) == 0.0
        for metric, state in states.items():
            assert value(text, f"mailprobe_smtp_{metric}_state", state=state, **labels) == 1.0
    wait_for(
        lambda: value(scrape(serve), "mailprobe_smtp_up", **labels) == 1.0,
        20,
        f"{fault} healed: {target} up again",
    )


def test_probe_endpoint_and_its_debug_view(lab: Lab, serve: ServeProcess) -> None:
    mx = lab.hosts["mx"].name
    base = f"http://{serve.listen}/probe"
    answer = httpx.get(base, params={"target": f"{mx}:25", "module": MODULE}, timeout=10)
    assert answer.status_code == 200
    text = answer.text
    assert value(text, "probe_success") == 1.0
    assert value(text, "mailprobe_smtp_dane_state", state="verified", port="25") == 1.0
    assert value(text, "mailprobe_smtp_pkix_state", state="valid") == 1.0
    debug = httpx.get(
        base, params={"target": f"{mx}:25", "module": MODULE, "debug": "true"}, timeout=10
    ).text
    assert f"S: 220 {mx} ESMTP" in debug
    assert "C: STARTTLS" in debug and "C: QUIT" in debug
    assert "DANE: verified" in debug and "PKIX: valid" in debug
    assert "Metrics that would have been returned:" in debug
    missing = httpx.get(base, params={"module": MODULE}, timeout=5)
    assert missing.status_code == 400
    unknown = httpx.get(base, params={"target": f"{mx}:25", "module": "nope"}, timeout=5)
    assert unknown.status_code == 400 and MODULE in unknown.text


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian package)")
def test_prometheus_scrapes_probe_with_blackbox_relabelling(
    lab: Lab, serve: ServeProcess, tmp_path: Path
) -> None:
    targets = [f"{lab.hosts['mx'].name}:25", f"{lab.hosts['srs'].name}:25"]
    config = {
        # /probe's timeout follows the scrape timeout (less 0.5 s), as blackbox's does.
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s"},
        "scrape_configs": [
            {
                "job_name": "smtp",
                "metrics_path": "/probe",
                "params": {"module": [MODULE]},
                "static_configs": [{"targets": targets}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": serve.listen},
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        api = f"http://{LOOPBACK}:{port}/api/v1/query"

        def instances(query: str) -> set[str]:
            try:
                answer = httpx.get(api, params={"query": query})
            except httpx.HTTPError:
                return set()
            if answer.status_code != 200:
                return set()
            return {r["metric"]["instance"] for r in answer.json()["data"]["result"]}

        # One query, so both facts come from the same scrape of each target.
        both = (
            'mailprobe_smtp_dane_state{state="verified"} == 1 and on(instance) probe_success == 1'
        )
        wait_for(lambda: instances(both) == set(targets), 60, "Prometheus scraped /probe")
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_finds_metrics_and_probe_clean(lab: Lab, serve: ServeProcess) -> None:
    mx = f"{lab.hosts['mx'].name}:25"
    metrics = wait_for(
        lambda: (t := scrape(serve)) and value(t, "mailprobe_smtp_tls_key_size") and t,
        20,
        "TLS facts on /metrics",
    )
    probe = httpx.get(
        f"http://{serve.listen}/probe", params={"target": mx, "module": MODULE}, timeout=10
    ).text
    for text in (metrics, probe):
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
        )
        # Other sources' families are theirs to lint; none of the SMTP prober's may show.
        problems = [
            line
            for line in (lint.stdout + lint.stderr).splitlines()
            if "mailprobe_smtp_" in line or line.startswith("probe_")
        ]
        assert problems == [], problems
