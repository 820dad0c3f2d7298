"""The canary message: token in a header and in the Subject, a real Date and Message-ID."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage
from email.policy import SMTP

from exporters.canary.token import HEADER, MARKER, Token

_POLICY = SMTP.clone(max_line_length=998)
"""Long enough that the token header is never folded: a folded token would be RFC 2047
encoded, and a receiver's header search would no longer find it."""


def message_id(token: Token, from_address: str) -> str:
    domain = from_address.rpartition("@")[2] or "mailprobe.invalid"
    return f"<{MARKER}.{token.route}.{token.id}@{domain}>"


def build_message(
    token: Token, token_text: str, header_from: str, rcpt_to: str
) -> tuple[str, bytes]:
    """``(Message-ID, bytes)`` of a canary for ``rcpt_to``."""
    msg = EmailMessage(policy=_POLICY)
    msgid = message_id(token, header_from)
    msg["From"] = header_from
    msg["To"] = rcpt_to
    msg["Subject"] = f"{MARKER} {token_text}"
    msg["Date"] = email.utils.formatdate(token.sent_at, localtime=False, usegmt=True)
    msg["Message-ID"] = msgid
    msg[HEADER] = token_text
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        "This is a canary from mailprobe: an automatic test of mail delivery.\n"
        f"Route {token.route}, canary {token.id}. It is removed automatically when it arrives.\n"
    )
    return msgid, msg.as_bytes()
