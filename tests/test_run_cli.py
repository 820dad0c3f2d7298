"""`mailprobe run` against real loopback servers: statuses, JSON contract, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import trustme

from tests.servers import SilentServer, SmtpServer, TlsFiles

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "docs" / "run-json.schema.json").read_text())


def run(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def write_config(path: Path, ca_file: Path, targets: list[tuple[str, int]]) -> Path:
    lines = ["defaults: {timeout: 1.5}", "smtp:", f"  ca_file: {ca_file}", "  targets:"]
    lines += [
        f"    - {{name: {name}, host: 127.0.0.1, port: {port}, server_name: localhost}}"
        for name, port in targets
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def short_lived_tls(directory: Path, days: int) -> TlsFiles:
    """A certificate that expires in ``days`` days, to make a session check warn."""
    ca = trustme.CA()
    not_after = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    leaf = ca.issue_cert("localhost", not_after=not_after)
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "c.pem", directory / "k.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return TlsFiles(ca_file, cert_file, key_file, ca, leaf)


def test_all_ok_exits_0_and_json_matches_schema(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path / "pki", "localhost")
    with SmtpServer(tls=tls) as smtp:
        cfg = write_config(tmp_path / "c.yml", tls.ca_file, [("good", smtp.port)])
        done = run(cfg, "--format", "json")
        assert smtp.sessions_completed == 1
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    (result,) = document["results"]
    assert (result["kind"], result["target"], result["status"]) == ("smtp", "good", "ok")
    assert result["facts"]["cert_days_left"] > 300
    assert document["summary"] == {"ok": 1, "warn": 0, "fail": 0, "error": 0}


def test_expiring_certificate_warns_and_exits_1(tmp_path: Path) -> None:
    tls = short_lived_tls(tmp_path / "pki", days=3)
    with SmtpServer(tls=tls) as smtp:
        cfg = write_config(tmp_path / "c.yml", tls.ca_file, [("soon", smtp.port)])
        done = run(cfg, "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["status"] == "warn"
    assert "expires in 2." in result["reason"] or "expires in 3." in result["reason"]


def test_hung_server_fails_with_phase_and_exits_2(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path / "pki", "localhost")
    with SilentServer() as silent, SmtpServer(tls=tls) as smtp:
        cfg = write_config(
            tmp_path / "c.yml", tls.ca_file, [("hung", silent.port), ("good", smtp.port)]
        )
        done = run(cfg, "--format", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    by_target = {r["target"]: r for r in document["results"]}
    assert by_target["hung"]["status"] == "fail"
    assert by_target["hung"]["reason"].startswith("banner: no complete answer")
    assert by_target["hung"]["duration_seconds"] < 5
    assert by_target["good"]["status"] == "ok"


def test_untrusted_certificate_fails_with_reason(tmp_path: Path) -> None:
    served = TlsFiles.create(tmp_path / "served", "localhost")
    other_ca = TlsFiles.create(tmp_path / "other", "localhost")
    with SmtpServer(tls=served) as smtp:
        cfg = write_config(tmp_path / "c.yml", other_ca.ca_file, [("mitm", smtp.port)])
        done = run(cfg)
    assert done.returncode == 2
    assert "PKIX" in done.stdout


def test_text_table_names_reason(tmp_path: Path) -> None:
    with SilentServer() as silent:
        cfg = write_config(tmp_path / "c.yml", tmp_path / "none.pem", [("hung", silent.port)])
        cfg.write_text(cfg.read_text().replace(f"  ca_file: {tmp_path / 'none.pem'}\n", ""))
        done = run(cfg)
    assert done.returncode == 2
    assert "hung" in done.stdout and "fail" in done.stdout
    assert "banner:" in done.stdout


def test_invalid_config_exits_3(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("smtp: {targets: [{name: x}]}\n")
    done = run(cfg)
    assert done.returncode == 3
    assert "smtp.targets[0]" in done.stderr and "'host' or 'mx_of'" in done.stderr


def test_no_matching_checks_exits_3(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("smtp: {targets: [{name: x, host: 127.0.0.1, port: 9}]}\n")
    done = run(cfg, "--only", "dns")
    assert done.returncode == 3
    assert "no checks" in done.stderr


def test_target_filter(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path / "pki", "localhost")
    with SmtpServer(tls=tls) as smtp:
        cfg = write_config(tmp_path / "c.yml", tls.ca_file, [("a", smtp.port), ("b", 9)])
        done = run(cfg, "--target", "a", "--format", "json")
    assert done.returncode == 0
    assert [r["target"] for r in json.loads(done.stdout)["results"]] == ["a"]
