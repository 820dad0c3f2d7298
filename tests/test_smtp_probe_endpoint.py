"""`/probe` on a real `mailprobe serve` against loopback SMTP servers: blackbox's
request shape, the same basic auth as /metrics, bad requests answered 400."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import ServeProcess, SmtpServer, TlsFiles


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def test_probe_needs_the_same_auth_as_metrics(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path / "pki", "localhost")
    hashed = bcrypt.hashpw(b"probe-secret", bcrypt.gensalt(rounds=4)).decode()
    config = {
        "web": {"basic_auth_users": {"prom": hashed}},
        "smtp": {
            "ca_file": str(tls.ca_file),
            "modules": {"smtp_starttls": {"server_name": "localhost", "dane": "off", "timeout": 3}},
        },
    }
    path = tmp_path / "mailprobe.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with ServeProcess(path) as serve:
        serve.wait_listening()
        url = f"http://{serve.listen}/probe"
        auth = ("prom", "probe-secret")
        with SmtpServer(tls=tls) as smtp:
            params = {"target": f"127.0.0.1:{smtp.port}", "module": "smtp_starttls"}
            assert httpx.get(url, params=params, timeout=10).status_code == 401
            assert httpx.get(f"http://{serve.listen}/metrics", timeout=10).status_code == 401
            assert smtp.connections == 0  # refused before any probe ran
            answer = httpx.get(url, params=params, auth=auth, timeout=10)
            assert answer.status_code == 200, answer.text
            assert value(answer.text, "probe_success") == 1.0
            assert value(answer.text, "mailprobe_smtp_pkix_state", state="valid") == 1.0
            assert value(answer.text, "mailprobe_smtp_up", family="ipv4") == 1.0
            assert smtp.sessions_completed == 1
            # blackbox answers a bad target with an error; so does /probe, with the reason.
            bad = httpx.get(url, params={**params, "target": "no-port"}, auth=auth, timeout=10)
            assert bad.status_code == 400 and "HOST:PORT" in bad.text
        # A server that is down is a failed probe (200, probe_success 0), not an error.
        down = httpx.get(url, params=params, auth=auth, timeout=10)
        assert down.status_code == 200, down.text
        assert value(down.text, "probe_success") == 0.0
        assert value(down.text, "mailprobe_smtp_failed_phase", phase="connect") == 1.0
