"""compose.yaml and the Dockerfile: valid for Debian's docker-compose (no daemon needed),
ports on 127.0.0.1 only, the same Prometheus and Alertmanager files as the end-to-end
test, Grafana's password from an env file, a slim non-root image with the compiled path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "compose.yaml"


def _config(tmp_path: Path) -> dict[str, Any]:
    """`docker-compose config` of compose.yaml, beside the env file a user creates."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (Debian package docker-compose)")
    (tmp_path / "deploy" / "compose").mkdir(parents=True)
    shutil.copy(COMPOSE, tmp_path / "compose.yaml")
    shutil.copy(
        REPO / "deploy" / "compose" / "grafana.env.example",
        tmp_path / "deploy" / "compose" / "grafana.env",
    )
    done = subprocess.run(
        [binary, "-f", str(tmp_path / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_docker_compose_config_is_valid_and_publishes_on_loopback_only(tmp_path: Path) -> None:
    services = _config(tmp_path)["services"]
    assert set(services) == {"mailprobe", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        assert service.get("ports"), name
        for port in service["ports"]:
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_mounts_the_files_the_end_to_end_test_uses(tmp_path: Path) -> None:
    services = _config(tmp_path)["services"]

    def mounts(service: str) -> dict[str, str]:
        out = {}
        for volume in services[service]["volumes"]:
            source, target = volume.split(":")[:2]
            named = not source.startswith("/")  # a named volume
            out[target] = source if named else str(Path(source).relative_to(tmp_path))
        return out

    prometheus = mounts("prometheus")
    assert prometheus["/etc/prometheus/prometheus.yml"] == "alerts/prometheus.yml"
    assert prometheus["/etc/prometheus/rules"] == "alerts/rules"
    assert mounts("alertmanager")["/etc/alertmanager/alertmanager.yml"] == "alerts/alertmanager.yml"
    assert mounts("grafana")["/var/lib/grafana/dashboards/mailprobe"] == "dashboards"
    # tests/alert_stack.py runs the real daemons on these very files.
    stack = (REPO / "tests" / "alert_stack.py").read_text()
    assert "ALERTS / 'alertmanager.yml'" in stack and '"prometheus.yml"' in stack
    grafana = services["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" in grafana  # from deploy/compose/grafana.env
    raw = yaml.safe_load(COMPOSE.read_text())
    assert raw["services"]["grafana"]["env_file"] == "./deploy/compose/grafana.env"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in raw["services"]["grafana"].get("environment", {})


def test_the_image_is_slim_non_root_and_compiles_the_log_path() -> None:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all("-slim" in line for line in froms), froms
    assert "MAILPROBE_MYPYC=1" in "\n".join(lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
