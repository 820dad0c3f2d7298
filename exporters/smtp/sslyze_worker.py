"""Runs one sslyze scan of one SMTP server and prints what it found as JSON.

Started by :mod:`exporters.smtp.tls_quality` as ``PYTHON -I sslyze_worker.py`` with a
JSON request on stdin, under the interpreter of the virtualenv that holds sslyze
(``.venv/sslyze``, see docs/smtp.md for why it is apart). It imports nothing of
mailprobe's, so it runs there as a plain script, and it judges nothing: the verdict is
made in mailprobe's process from the facts printed here.

Request: ``{"host": NAME, "address": IP, "port": 25, "starttls": true, "ehlo_name": NAME,
"network_timeout": 5}``. Answer: ``{"error": null or {"kind", "text"}, "versions": {
"TLSv1.2": [{"name", "kex": null or {"type", "curve", "size", DH: "prime", "generator"}}],
...}, "scan_errors":
{"TLSv1.0": {"reason", "kind"}}, "chain": [base64 DER, leaf first], "compression": bool or null}``.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from sslyze import (
    ProtocolWithOpportunisticTlsEnum,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

VERSIONS = {
    "SSLv2": "ssl_2_0_cipher_suites",
    "SSLv3": "ssl_3_0_cipher_suites",
    "TLSv1.0": "tls_1_0_cipher_suites",
    "TLSv1.1": "tls_1_1_cipher_suites",
    "TLSv1.2": "tls_1_2_cipher_suites",
    "TLSv1.3": "tls_1_3_cipher_suites",
}


def _kex(accepted: Any) -> dict[str, Any] | None:
    key = accepted.ephemeral_key
    if key is None:
        return None
    found: dict[str, Any] = {
        "type": str(key.type_name),
        "curve": str(getattr(key, "curve_name", "")) or None,
        "size": int(key.size),
    }
    prime = getattr(key, "prime", None)
    if prime is not None:  # finite-field DH: the group itself, to tell RFC 7919's apart
        found["prime"] = bytes(prime).hex()
        found["generator"] = int.from_bytes(bytes(key.generator), "big")
    return found


def _attempt_error(attempt: Any) -> dict[str, str]:
    trace = attempt.error_trace
    reason = attempt.error_reason
    return {
        "reason": str(reason.value) if reason is not None else "unknown",
        "kind": trace.exc_type.__name__ if trace is not None else "unknown",
    }


def scan(request: dict[str, Any]) -> dict[str, Any]:
    location = ServerNetworkLocation(
        hostname=request["host"], port=int(request["port"]), ip_address=request["address"]
    )
    starttls = bool(request["starttls"])
    network = ServerNetworkConfiguration(
        tls_server_name_indication=request["host"],
        tls_opportunistic_encryption=ProtocolWithOpportunisticTlsEnum.SMTP if starttls else None,
        smtp_ehlo_hostname=request["ehlo_name"] if starttls else None,
        network_timeout=int(request["network_timeout"]),
        network_max_retries=1,
    )
    commands = {ScanCommand(c) for c in VERSIONS.values()}
    commands |= {ScanCommand.CERTIFICATE_INFO, ScanCommand.TLS_COMPRESSION}
    scanner = Scanner(per_server_concurrent_connections_limit=2, concurrent_server_scans_limit=1)
    scanner.queue_scans(
        [ServerScanRequest(location, network_configuration=network, scan_commands=commands)]
    )
    result = next(iter(scanner.get_results()))
    answer: dict[str, Any] = {
        "error": None,
        "versions": {},
        "scan_errors": {},
        "chain": [],
        "compression": None,
    }
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        trace = result.connectivity_error_trace
        answer["error"] = {
            "kind": trace.exc_type.__name__ if trace is not None else "unknown",
            "text": str(trace).strip() if trace is not None else "",
        }
        return answer
    attempts = result.scan_result
    completed = ScanCommandAttemptStatusEnum.COMPLETED
    for version, attribute in VERSIONS.items():
        attempt = getattr(attempts, attribute)
        if attempt.status != completed:
            answer["scan_errors"][version] = _attempt_error(attempt)
            continue
        answer["versions"][version] = [
            {"name": a.cipher_suite.name, "kex": _kex(a)}
            for a in attempt.result.accepted_cipher_suites
        ]
    certificate = attempts.certificate_info
    if certificate.status == completed and certificate.result.certificate_deployments:
        chain = certificate.result.certificate_deployments[0].received_certificate_chain
        answer["chain"] = [
            base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in chain
        ]
    elif certificate.status != completed:
        answer["scan_errors"]["certificate"] = _attempt_error(certificate)
    compression = attempts.tls_compression
    if compression.status == completed:
        answer["compression"] = bool(compression.result.supports_compression)
    return answer


def main() -> int:
    request = json.loads(sys.stdin.read(65536))
    json.dump(scan(request), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
