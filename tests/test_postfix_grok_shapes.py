"""whyscream/postfix-grok-patterns' 191 test lines, with the fields they expect.

Each YAML file holds one Postfix message (syslog prefix stripped) and the fields the
grok pattern extracts. Our parsers must understand every message and produce the same
values. Where grok splits a value differently from our groups (for example the
``keyvalue_data`` string, or the RBL text of a reject) the mapping below says how the
expected value is checked against ours; no expected field is skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporters.postfix_logs.fields import command_stats, fields, split_relay, tls_features
from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.programs import ProgramTable, ServiceMap
from tests.shared_data import params, require

CASES = params("postfix/whyscream-postfix-grok-patterns-tests", "*.yaml")

DAEMON = {
    "script": "postfix-script",
    "trivial_rewrite": "trivial-rewrite",
    "tls_features": "smtp",
    "discard": "discard",
}
"""Test-file prefix -> the daemon whose parser handles the line."""

SUBPATTERNS = {"command_counter_data", "delays", "relay"}
"""Files that test a grok sub-pattern, not a whole message: checked with field helpers."""

TABLE = ProgramTable(ServiceMap({}))

Check = Callable[[Kind, dict[str, str], str], Any]
"""Returns our value for an expected grok field (compared with ==)."""


def _get(name: str) -> Check:
    return lambda kind, f, message: f.get(name)


def _kv_pairs(kv: str) -> dict[str, str]:
    out = {}
    for item in kv.replace(", ", " ").split():
        key, _, value = item.partition("=")
        out[key] = value.rstrip(",")
    return out


def _keyvalue(kind: Kind, f: dict[str, str], message: str) -> Any:
    """grok's raw key=value run: equal to our ``kv`` group, or field by field."""
    if "kv" in f:
        return f["kv"]
    ours = {
        "to": f.get("to"),
        "orig_to": f.get("orig_to"),
        "relay": f.get("relay"),
        "delay": f.get("delay"),
        "delays": "/".join(
            f[k] for k in ("d_before_qmgr", "d_in_qmgr", "d_conn_setup", "d_transmission") if k in f
        ),
        "dsn": f.get("dsn"),
        "tls": f.get("tls"),
        "from": f.get("sender"),
        "size": f.get("size"),
        "nrcpt": f.get("nrcpt"),
        "uid": f.get("uid"),
        "client": f"{f.get('client_host')}[{f.get('client_ip')}]",
    }
    return _Pairs({k: (ours[k] or "").strip("<>") for k in ours})


class _Pairs(dict[str, str]):
    """Equal to a keyvalue string when every pair in it matches ours."""

    def __eq__(self, other: object) -> bool:
        assert isinstance(other, str)
        return all(self.get(k) == v.strip("<>") for k, v in _kv_pairs(other).items())

    __hash__ = None  # type: ignore[assignment]


def _message(kind: Kind, f: dict[str, str], message: str) -> Any:
    if kind in (Kind.LOG, Kind.NOT_ACCEPTED):
        return f["text"]
    if kind is Kind.SASL_FAILURE:
        return f"SASL {f['method']} authentication {f['result']}: {f['text']}"
    if kind is Kind.CLEANUP_CHECK:
        return f"{f['check']} {f['text']} from {f['client']}"
    # qmgr "removed", "skipped, still being delivered"; warnings other kinds claimed
    return message.split(": ", 1)[1]


def _contained_in_text(name: str) -> Check:
    """RBL rejects: grok pulls ``[data] blocked using ...`` out of the reply text."""

    def check(kind: Kind, f: dict[str, str], message: str) -> Any:
        if name in f:
            return f[name]
        return _Contains(f["text"])

    return check


class _Contains(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other in self

    __hash__ = str.__hash__


GROK: dict[str, Check] = {
    "postfix_queueid": _get("qid"),
    "postfix_client_hostname": _get("client_host"),
    "postfix_client_ip": _get("client_ip"),
    "postfix_client_ip_unknown": _get("client_ip"),
    "postfix_client_port": _get("client_port"),
    "postfix_server_ip": _get("server_ip"),
    "postfix_server_port": _get("server_port"),
    "postfix_relay_hostname": _get("relay_host"),
    "postfix_relay_ip": _get("relay_ip"),
    "postfix_relay_port": _get("relay_port"),
    "postfix_status": _get("status"),
    "postfix_from": _get("sender"),
    "postfix_smtp_response": _get("response"),
    "postfix_local_response": _get("response"),
    "postfix_pipe_response": _get("response"),
    "postfix_error_response": _get("response"),
    "postfix_message-id": _get("message_id"),
    "postfix_keyvalue_data": _keyvalue,
    "postfix_message_level": lambda k, f, m: f.get("level") or f.get("action"),
    "postfix_message": _message,
    "postfix_action": _get("action"),
    "postfix_smtp_stage": lambda k, f, m: f.get("command") or f.get("stage"),
    "postfix_status_code": _get("code"),
    "postfix_status_code_enhanced": _get("enhanced"),
    "postfix_status_data": _contained_in_text("data"),
    "postfix_status_message": lambda k, f, m: (
        f["text"] if "data" in f or "blocked using" not in f["text"] else _Contains(f["text"])
    ),
    "postfix_tls_trustlevel": _get("trust"),
    "postfix_tls_version": _get("protocol"),
    "postfix_tls_cipher": _get("cipher"),
    "postfix_tls_cipher_size": lambda k, f, m: f"{f['secret_bits']}/{f['algorithm_bits']}",
    "postfix_tls_key_exchange": _get("key_exchange"),
    "postfix_tls_server_signature": _get("server_signature"),
    "postfix_tls_server_signature_size": _get("server_signature_size"),
    "postfix_tls_server_signature_curve": _get("server_signature_curve"),
    "postfix_tls_server_digest": _get("server_digest"),
    "postfix_tls_error": _get("reason"),
    "postfix_smtpd_lostconn_data": _get("event"),
    "postfix_smtp_lostconn_data": lambda k, f, m: (
        f["event"] if k is Kind.CONVERSATION_LOST else f["reason"]
    ),
    "postfix_smtp_lostconn_reason": _get("stage"),
    "postfix_pix_workaround": _get("workaround"),
    "postfix_command_counter_data": _get("stats"),
    "postfix_discarded_ehlo_keywords": _get("keywords"),
    "postfix_proxy_result": _get("action"),
    "postfix_proxy_smtp_stage": _get("stage"),
    "postfix_proxy_message": lambda k, f, m: " ".join(
        v for v in (f.get("code"), f.get("enhanced"), f["text"]) if v
    ),
    "postfix_proxy_status_code": _get("code"),
    "postfix_proxy_status_code_enhanced": _get("enhanced"),
    "postfix_milter_result": lambda k, f, m: f["action"].removeprefix("milter-"),
    "postfix_milter_message": lambda k, f, m: (
        f"{f['check']} {f['text']} from {f['client']}"
        if k is Kind.CLEANUP_CHECK
        else f"{f['stage']} from {f['client_host']}[{f['client_ip']}]: "
        + " ".join(v for v in (f.get("code"), f.get("enhanced"), f["text"]) if v)
    ),
    "postfix_milter_data": _get("detail"),
    "postfix_prepend_type": _get("check"),
    "postfix_prepend_trigger": _get("text"),
    "postfix_prepend_value": _get("detail"),
    "postfix_postscreen_access": lambda k, f, m: (
        f"PASS {f['pass_type']}" if k is Kind.PS_PASS else f["action"]
    ),
    "postfix_postscreen_violation": lambda k, f, m: (
        "DNSBL" if k is Kind.PS_DNSBL else f["violation"]
    ),
    "postfix_postscreen_violation_time": _get("seconds"),
    "postfix_postscreen_dnsbl_rank": _get("rank"),
    "postfix_postscreen_toobusy_data": _get("text"),
    "postfix_postscreen_cache_retained": _get("retained"),
    "postfix_postscreen_cache_dropped": _get("dropped"),
    "postfix_verify_cleanup_type": _get("cleanup_type"),
    "postfix_verify_cache_retained": _get("retained"),
    "postfix_verify_cache_dropped": _get("dropped"),
    "postfix_dnsbl_domain": _get("dnsbl"),
    "postfix_dnsbl_result": _get("result"),
    "postfix_anvil_cache_size": _get("cache_size"),
    "postfix_anvil_conn_count": _get("conn_count"),
    "postfix_anvil_conn_rate": _get("conn_rate"),
    "postfix_anvil_conn_period": _get("conn_period"),
    "postfix_anvil_timestamp": _get("timestamp"),
    "postfix_service": _get("service"),
    "postfix_bounce_queueid": _get("new_qid"),
    "postfix_bounce_recipient": _get("recipient"),
    "postfix_bounce_reason": _get("notification"),
    "postfix_version": _get("version"),
    "postfix_config_path": _get("config"),
    "postfix_termination_signal": _get("signal"),
    "postfix_postsuper_action": _get("action"),
    "postfix_postsuper_summary_action": _get("action"),
    "postfix_postsuper_summary_count": _get("count"),
    "postfix_scache_hits": _get("hits"),
    "postfix_scache_miss": _get("miss"),
    "postfix_scache_success": _get("success"),
    "postfix_scache_timestamp": _get("timestamp"),
    "postfix_scache_domains": _get("domains"),
    "postfix_scache_addresses": _get("addresses"),
    "postfix_scache_connection": _get("connection"),
}


def _load(path: Path) -> tuple[str, dict[str, Any]]:
    case = yaml.safe_load(path.read_text())
    expected = {k: str(v) for k, v in (case.get("results") or {}).items()}
    return str(case["data"]), expected


def test_the_corpus_is_complete() -> None:
    assert (
        len(list(require("postfix", "whyscream-postfix-grok-patterns-tests").glob("*.yaml"))) == 191
    )


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_grok_case(path: Path) -> None:
    message, expected = _load(path)
    prefix = path.stem.rsplit("_", 1)[0]
    if prefix in SUBPATTERNS or (prefix == "tls_features" and "status=" not in message):
        _check_subpattern(prefix, message, expected)
        return
    program = TABLE.lookup("postfix/" + DAEMON.get(prefix, prefix))
    assert program.daemon != "other", prefix
    parsed = program.parse(message)
    assert parsed is not None, f"unsupported: {message!r}"
    kind, match = parsed
    ours = fields(match)
    for name, value in expected.items():
        assert name in GROK, f"no mapping for {name}"
        got = GROK[name](kind, ours, message)
        assert got == value, f"{name}: expected {value!r}, got {got!r} ({kind.name} {ours})"


def _check_subpattern(prefix: str, data: str, expected: dict[str, str]) -> None:
    if prefix == "command_counter_data":
        stats = command_stats(data)
        for name, value in expected.items():
            command = name.removeprefix("postfix_cmd_").removesuffix("_accepted")
            command = "commands" if command == "count" else command
            accepted, issued = stats[command]
            assert (accepted if name.endswith("_accepted") else issued) == int(value), name
        assert len(stats) == len({k.removesuffix("_accepted") for k in expected})
    elif prefix == "delays":
        assert data.split("/") == [
            expected[f"postfix_delay_{s}"]
            for s in ("before_qmgr", "in_qmgr", "conn_setup", "transmission")
        ]
    elif prefix == "relay":
        host, address, _port = split_relay(data)
        assert (host, address) == (
            expected["postfix_relay_hostname"],
            expected["postfix_relay_service"],
        )
    else:
        names = {
            "postfix_tls_security_level": "level",
            "postfix_tls_downgrade_level": "downgrade",
            "postfix_tls_policy_undecided": "undecided",
            "postfix_requiretls": "requiretls",
            "postfix_requiretls_policy_undecided": "requiretls_undecided",
            "postfix_requiretls_policy_violation": "violation",
            "postfix_requiretls_downgrade_level": "requiretls_downgrade",
        }
        assert tls_features(data) == {names[k]: v for k, v in expected.items()}
