"""Delivery status notifications (RFC 3464) that quote one of our canaries."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from exporters.canary.token import Signer, Token


@dataclass(frozen=True, slots=True)
class Bounce:
    token: Token
    status: str
    """The enhanced status code, e.g. ``5.7.1``."""
    diagnostic: str
    """The remote server's words (Diagnostic-Code), e.g. ``smtp; 550 5.7.1 ... spam``."""
    remote: str


def _fields(text: str) -> list[dict[str, str]]:
    """The field groups of a message/delivery-status body (per-message, per-recipient)."""
    groups: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                groups.append(current)
                current = {}
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        last = name.strip().lower()
        current[last] = value.strip()
    if current:
        groups.append(current)
    return groups


def parse_bounce(msg: Message, raw: bytes, signer: Signer) -> Bounce | None:
    """A failure DSN quoting an HMAC-valid canary token, or None (delay reports too)."""
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "")).lower() != "delivery-status":
        return None
    token = signer.verify(raw.decode("utf-8", "replace"))
    if token is None:
        return None
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        # the email package parses the field groups as messages of their own
        text = "\n\n".join(map(str, payload)) if isinstance(payload, list) else str(payload)
        for group in _fields(text):
            if group.get("action", "").lower() != "failed":
                continue
            diagnostic = " ".join(group.get("diagnostic-code", "").split())
            return Bounce(token, group.get("status", ""), diagnostic, group.get("remote-mta", ""))
    return None
