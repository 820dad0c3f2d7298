"""parsedmarc as a parser only: offline (no DNS, no downloads), called on payloads that
already passed :mod:`exporters.dmarc.extract` and :mod:`exporters.dmarc.xmlscan`.

``ParserConfig(offline=True, always_use_local_files=True)`` makes parsedmarc skip reverse
DNS and read its bundled reverse-DNS map, PSL overrides and IP database instead of
fetching them (tests/test_dmarc_offline.py watches for sockets while parsing).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from parsedmarc import (
    ParserError,
    parse_aggregate_report_xml,
    parse_report_email,
    parse_smtp_tls_report_json,
)
from parsedmarc.config import ParserConfig

from exporters.dmarc import xmlscan
from exporters.dmarc.errors import InvalidReport, Reason
from exporters.dmarc.extract import Payload, PayloadKind
from exporters.dmarc.limits import Limits
from exporters.dmarc.model import (
    AggregateRecord,
    AggregateReport,
    FeedbackReport,
    Report,
    TlsFailure,
    TlsPolicy,
    TlsReport,
)

_CONFIG = ParserConfig(offline=True, always_use_local_files=True)
MAX_TEXT = 253
"""Strings kept from a report are cut here (a domain name's limit): reports are input
from anyone."""


def parse_payload(payload: Payload, limits: Limits) -> Report:
    """The typed report in ``payload``, or :class:`InvalidReport` saying why not."""
    if payload.kind is PayloadKind.XML:
        return parse_aggregate(payload.data, limits)
    if payload.kind is PayloadKind.JSON:
        return parse_tls(payload.data)
    return parse_feedback(payload.data, payload.sender_domain)


def parse_aggregate(data: bytes, limits: Limits) -> AggregateReport:
    data = xmlscan.strip_schema_tags(data)
    text = xmlscan.decode(data)
    xmlscan.scan(data, limits.max_records)
    try:
        raw = parse_aggregate_report_xml(text, config=_CONFIG)
    except ParserError as exc:
        raise InvalidReport(Reason.PARSE, _first_line(exc)) from None
    meta, published = raw["report_metadata"], raw["policy_published"]
    records = tuple(_record(r) for r in raw["records"])
    return AggregateReport(
        org=_text(meta.get("org_name")),
        report_id=_text(meta.get("report_id")),
        begin=_epoch(meta["begin_date"]),
        end=_epoch(meta["end_date"]),
        domain=_text(published.get("domain")).lower().rstrip("."),
        policy=_text(published.get("p")),
        records=records,
    )


def _record(raw: dict[str, Any]) -> AggregateRecord:
    evaluated, ids, auth = raw["policy_evaluated"], raw["identifiers"], raw["auth_results"]
    reasons = evaluated.get("policy_override_reasons") or []
    return AggregateRecord(
        source_ip=_text(raw["source"]["ip_address"]),
        count=int(raw["count"]),
        disposition=_text(evaluated.get("disposition")),
        dkim_aligned=bool(raw["alignment"]["dkim"]),
        spf_aligned=bool(raw["alignment"]["spf"]),
        overrides=tuple(_text(r.get("type")).lower() for r in reasons),
        override_comments=_text("; ".join(_text(r.get("comment")) for r in reasons)),
        header_from=_text(ids.get("header_from")).lower(),
        envelope_from=_text(ids.get("envelope_from")).lower(),
        dkim_domains=_text(
            ",".join(f"{_text(d.get('domain'))}={_text(d.get('result'))}" for d in auth["dkim"])
        ),
        spf_domain=_text(
            ",".join(f"{_text(s.get('domain'))}={_text(s.get('result'))}" for s in auth["spf"])
        ),
        begin=_epoch(raw["interval_begin"]),
        end=_epoch(raw["interval_end"]),
    )


def parse_tls(data: bytes) -> TlsReport:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidReport(Reason.ENCODING, f"byte {exc.start} is not valid UTF-8") from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidReport(Reason.PARSE, f"not valid JSON ({exc})") from None
    try:
        raw = parse_smtp_tls_report_json(text)
    except ParserError as exc:
        raise InvalidReport(Reason.PARSE, _first_line(exc)) from None
    policies = tuple(
        TlsPolicy(
            domain=_text(p.get("policy_domain")).lower().rstrip("."),
            policy_type=_text(p.get("policy_type")),
            successful=int(p.get("successful_session_count") or 0),
            failed=int(p.get("failed_session_count") or 0),
            failures=tuple(
                TlsFailure(
                    result_type=_text(f.get("result_type")),
                    sessions=int(f.get("failed_session_count") or 0),
                    sending_ip=_text(f.get("sending_mta_ip")),
                    receiving_mx=_text(f.get("receiving_mx_hostname")),
                )
                for f in p.get("failure_details") or []
            ),
        )
        for p in raw["policies"]
    )
    return TlsReport(
        org=_text(raw.get("organization_name")),
        report_id=_text(raw.get("report_id")),
        begin=_epoch(raw["begin_date"]),
        end=_epoch(raw["end_date"]),
        policies=policies,
    )


def parse_feedback(raw_message: bytes, sender_domain: str) -> FeedbackReport:
    try:
        parsed = parse_report_email(raw_message, config=_CONFIG)
    except ParserError as exc:
        raise InvalidReport(Reason.PARSE, _first_line(exc)) from None
    if parsed["report_type"] != "failure":
        raise InvalidReport(Reason.NO_REPORT, "mail holds no feedback report")
    report: Any = parsed["report"]
    return FeedbackReport(
        feedback_type=_text(report.get("feedback_type")).lower() or "auth-failure",
        reporter=sender_domain,
        reported_domain=_text(report.get("reported_domain")).lower().rstrip("."),
        auth_failure=",".join(_text(a).lower() for a in report.get("auth_failure") or []),
        source_ip=_text((report.get("source") or {}).get("ip_address")),
        arrival=_epoch(report.get("arrival_date_utc")),
    )


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()[:MAX_TEXT]


def _epoch(value: object) -> int:
    """parsedmarc's UTC times ('YYYY-MM-DD HH:MM:SS' or ISO 8601 with Z) as Unix time."""
    text = _text(value)
    if not text:
        return 0
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidReport(Reason.SCHEMA, f"unreadable time {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
