"""Verifications of a delivered canary: what the receiver says, and what we check ourselves.

* Authentication-Results (RFC 8601), parsed with ``authres``, only from the trusted
  authserv-id and only its newest block (the topmost headers before the next Received:
  a receiver that also relays our mail on its way in adds an older block of its own).
* An independent DKIM verification with dkimpy; the key is looked up through mailprobe's
  own resolver (``exporters.dns``) and handed to dkimpy, which then does no DNS itself.
* The Return-Path: SRS-rewritten on forwarded routes, not on direct ones, or a pattern.
* TLS on every SMTP hop and per-hop delays, from the Received chain.
* A spam-score header, and the delivery latency.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message

import authres
import dkim

FetchTxt = Callable[[str], Awaitable[bytes | None]]
"""Looks up a TXT record (joined strings) by name; None when there is none."""


@dataclass(frozen=True, slots=True)
class Expectations:
    authserv_id: str | None = None
    spf: str | None = None
    dkim: str | None = None
    dmarc: str | None = None
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    return_path: str | None = None
    srs: bool | None = None
    tls_every_hop: bool = False
    spam_header: str | None = None
    spam_max: float | None = None
    max_latency: float | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    name: str
    """authres_spf, authres_dkim, authres_dmarc, dkim_signature, return_path, tls, spam_score,
    latency."""
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Hop:
    by: str
    protocol: str
    tls: bool
    seconds: float | None
    """Time since the previous hop (the first: since sending); None without a date."""


@dataclass(slots=True)
class Report:
    verifications: list[Verification] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)

    @property
    def failed(self) -> list[Verification]:
        return [v for v in self.verifications if not v.ok]


_SMTP_WITH = re.compile(r"\bwith\s+(E?SMTP[A-Z]*|LMTP[A-Z]*)\b", re.I)
_BY = re.compile(r"\bby\s+([^\s;()]+)", re.I)


def received_hops(msg: Message, sent_at: float) -> list[Hop]:
    """The Received chain, oldest first."""
    hops: list[Hop] = []
    previous = sent_at
    for value in reversed(msg.get_all("Received") or []):
        text = " ".join(str(value).split())
        header, _, date_text = text.rpartition(";")
        when = None
        parsed = email.utils.parsedate_tz(date_text.strip())
        if parsed is not None:
            when = float(email.utils.mktime_tz(parsed))
        by = _BY.search(header)
        proto = _SMTP_WITH.search(header)
        protocol = proto.group(1).upper() if proto else ""
        tls = "using TLS" in header or protocol in ("ESMTPS", "ESMTPSA", "LMTPS")
        seconds = None if when is None else max(0.0, when - previous)
        hops.append(Hop(by.group(1) if by else "?", protocol, tls, seconds))
        if when is not None:
            previous = when
    return hops


def trusted_results(msg: Message, authserv_id: str) -> list[authres.AuthenticationResult]:
    """Results of the newest Authentication-Results block from ``authserv_id``."""
    found: list[authres.AuthenticationResult] = []
    wanted = authserv_id.lower()
    for name, value in msg.items():
        lower = name.lower()
        if lower == "received" and found:
            break
        if lower != "authentication-results":
            continue
        try:
            header = authres.AuthenticationResultsHeader.parse(
                "Authentication-Results: " + " ".join(str(value).split())
            )
        except Exception:  # authres raises its own and a few builtin errors on bad input
            continue
        if str(header.authserv_id).lower() == wanted:
            found.extend(header.results)
    return found


def _describe(result: authres.AuthenticationResult) -> str:
    words = result.reason or result.result_comment
    reason = f" ({words})" if words else ""
    props = " ".join(
        f"{p.type}.{p.name}={p.value}" for p in result.properties if p.name in ("d", "from")
    )
    return f"{result.method}={result.result}{reason}{(' ' + props) if props else ''}"


def _check_authres(msg: Message, expect: Expectations, report: Report) -> None:
    if expect.authserv_id is None:
        return
    results = trusted_results(msg, expect.authserv_id)
    for method, wanted in (("spf", expect.spf), ("dkim", expect.dkim), ("dmarc", expect.dmarc)):
        if wanted is None:
            continue
        mine = [r for r in results if r.method == method]
        if method == "dkim" and expect.dkim_domain:
            mine = [
                r
                for r in mine
                if any(
                    p.name == "d" and str(p.value).lower() == expect.dkim_domain.lower()
                    for p in r.properties
                )
            ] or mine
        if not mine:
            report.verifications.append(
                Verification(
                    f"authres_{method}", False, f"no {method} result from {expect.authserv_id}"
                )
            )
            continue
        # Every result of the method must agree: a receiver may run two checkers (the
        # lab's opendmarc and policyd-spf both report spf), and one failing is a failure.
        wrong = [r for r in mine if str(r.result).lower() != wanted.lower()]
        ok = not wrong
        shown = _describe(wrong[0] if wrong else mine[0])
        report.verifications.append(
            Verification(f"authres_{method}", ok, f"{shown} per {expect.authserv_id}")
        )


_TAG = re.compile(r"(\w+)\s*=\s*([^;]*)")


def _signature_tags(value: str) -> dict[str, str]:
    return {k.lower(): "".join(v.split()) for k, v in _TAG.findall(value)}


@dataclass(frozen=True, slots=True)
class _Signature:
    index: int
    selector: str
    name: str
    record: bytes | None


async def _find_signature(
    msg: Message, expect: Expectations, fetch_txt: FetchTxt | None
) -> _Signature | None:
    """The signature to verify (d=dkim_domain, s=dkim_selector) with its key record."""
    if expect.dkim_domain is None or fetch_txt is None:
        return None
    domain = expect.dkim_domain.lower()
    for index, value in enumerate(msg.get_all("DKIM-Signature") or []):
        tags = _signature_tags(str(value))
        if tags.get("d", "").lower() != domain:
            continue
        selector = tags.get("s", "")
        if expect.dkim_selector and selector != expect.dkim_selector:
            continue
        name = f"{selector}._domainkey.{domain}"
        return _Signature(index, selector, name, await fetch_txt(name))
    return _Signature(-1, "", "", None)


def _check_dkim(raw: bytes, expect: Expectations, found: _Signature | None, report: Report) -> None:
    if found is None or expect.dkim_domain is None:
        return
    domain = expect.dkim_domain.lower()
    if found.index < 0:
        wanted = f" s={expect.dkim_selector}" if expect.dkim_selector else ""
        report.verifications.append(
            Verification("dkim_signature", False, f"dkim: no signature with d={domain}{wanted}")
        )
        return
    record = found.record
    if record is None:
        report.verifications.append(
            Verification("dkim_signature", False, f"dkim: no key record at {found.name}")
        )
        return

    def dnsfunc(_name: bytes, timeout: int = 5) -> bytes:
        return record

    tag = f"d={domain} s={found.selector}, checked by mailprobe"
    try:
        ok = bool(dkim.DKIM(raw).verify(idx=found.index, dnsfunc=dnsfunc))
    except dkim.DKIMException as exc:
        report.verifications.append(
            Verification("dkim_signature", False, f"dkim=fail ({exc}) {tag}")
        )
        return
    if ok:
        report.verifications.append(Verification("dkim_signature", True, f"dkim=pass {tag}"))
        return
    report.verifications.append(
        Verification(
            "dkim_signature",
            False,
            f"dkim=fail (signature did not verify with the key at {found.name}) d={domain}, "
            "checked by mailprobe",
        )
    )


def _check_return_path(msg: Message, expect: Expectations, report: Report) -> None:
    if expect.srs is None and expect.return_path is None:
        return
    address = email.utils.parseaddr(str(msg.get("Return-Path", "")))[1]
    if expect.srs is not None:
        is_srs = bool(re.match(r"SRS[01][=+-]", address, re.I))
        ok = is_srs == expect.srs
        want = "SRS-rewritten" if expect.srs else "not SRS-rewritten"
        report.verifications.append(
            Verification(
                "return_path",
                ok,
                f"Return-Path <{address}> {'is' if ok else 'is not'} {want}"
                if ok
                else f"Return-Path <{address}> should be {want}",
            )
        )
    if expect.return_path is not None:
        ok = re.fullmatch(expect.return_path, address) is not None
        report.verifications.append(
            Verification(
                "return_path",
                ok,
                f"Return-Path <{address}> {'matches' if ok else 'does not match'} "
                + expect.return_path,
            )
        )


def _check_tls(hops: Sequence[Hop], expect: Expectations, report: Report) -> None:
    if not expect.tls_every_hop:
        return
    smtp = [h for h in hops if h.protocol.startswith(("SMTP", "ESMTP"))]
    plain = [h.by for h in smtp if not h.tls]
    if plain:
        report.verifications.append(
            Verification("tls", False, "no TLS on the hop to " + ", ".join(plain))
        )
    else:
        report.verifications.append(Verification("tls", True, f"TLS on all {len(smtp)} SMTP hops"))


def _check_spam(msg: Message, expect: Expectations, report: Report) -> None:
    if expect.spam_header is None or expect.spam_max is None:
        return
    value = msg.get(expect.spam_header)
    if value is None:
        report.verifications.append(
            Verification("spam_score", False, f"no {expect.spam_header} header")
        )
        return
    match = re.search(r"-?\d+(?:\.\d+)?", str(value))
    if match is None:
        report.verifications.append(
            Verification(
                "spam_score", False, f"{expect.spam_header}: no number in {str(value)[:40]!r}"
            )
        )
        return
    score = float(match.group(0))
    ok = score <= expect.spam_max
    report.verifications.append(
        Verification(
            "spam_score",
            ok,
            f"{expect.spam_header} {score:g} {'<=' if ok else '>'} {expect.spam_max:g}",
        )
    )


async def verify_delivery(
    raw: bytes,
    msg: Message,
    sent_at: float,
    latency: float | None,
    expect: Expectations,
    fetch_txt: FetchTxt | None,
) -> Report:
    """Every verification ``expect`` asks for. The DNS lookup is awaited here; the parsing
    and the RSA check (a few ms of CPU per canary) run in a worker thread, so a burst of
    canaries does not hold up the IMAP session on the event loop."""
    signature = await _find_signature(msg, expect, fetch_txt)
    return await asyncio.to_thread(_verify, raw, msg, sent_at, latency, expect, signature)


def _verify(
    raw: bytes,
    msg: Message,
    sent_at: float,
    latency: float | None,
    expect: Expectations,
    signature: _Signature | None,
) -> Report:
    report = Report(hops=received_hops(msg, sent_at))
    _check_authres(msg, expect, report)
    _check_dkim(raw, expect, signature, report)
    _check_return_path(msg, expect, report)
    _check_tls(report.hops, expect, report)
    _check_spam(msg, expect, report)
    if expect.max_latency is not None and latency is not None:
        ok = latency <= expect.max_latency
        report.verifications.append(
            Verification(
                "latency",
                ok,
                f"delivered in {latency:.1f} s "
                f"({'within' if ok else 'over'} {expect.max_latency:g} s)",
            )
        )
    return report
