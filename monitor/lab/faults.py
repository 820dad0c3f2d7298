"""The catalogue of named faults: what each breaks and what a good monitor should say.

A fault is data only. The lab applies it by re-rendering its configuration with the
fault active (zones, Postfix and Dovecot files, installed certificates) and then
reloading, restarting or stopping the services the fault names.
"""

from __future__ import annotations

from dataclasses import dataclass

# Services, by the names `lab status` shows.
KNOT = "knot"
UNBOUND = "unbound"
DOVECOT = "dovecot"
POSTSRSD = "postsrsd"
OPENDKIM = "opendkim"
OPENDMARC = "opendmarc"
WORLD_OPENDKIM = "world-opendkim"
WORLD_OPENDMARC = "world-opendmarc"
MTA_STS = "mta-sts"
POSTFIX_MX = "postfix-mx"
POSTFIX_SRS = "postfix-srs"
POSTFIX_SUBMISSION = "postfix-submission"
POSTFIX_WORLD = "postfix-world"

SERVICES: tuple[str, ...] = (
    KNOT,
    UNBOUND,
    DOVECOT,
    POSTSRSD,
    OPENDKIM,
    OPENDMARC,
    WORLD_OPENDKIM,
    WORLD_OPENDMARC,
    MTA_STS,
    POSTFIX_MX,
    POSTFIX_SRS,
    POSTFIX_SUBMISSION,
    POSTFIX_WORLD,
)

_DNS = (KNOT, UNBOUND)

# Fault names used by the renderers.
MX_CERT_EXPIRED = "mx-cert-expired"
SUBMISSION_465_WRONG_NAME = "submission-465-wrong-name"
SRS_CERT_ROTATED = "srs-cert-rotated-tlsa-stale"
SPF_MISSING_SRS = "spf-missing-srs"
SPF_TOO_MANY_LOOKUPS = "spf-too-many-lookups"
DKIM_RECORD_REMOVED = "dkim-record-removed"
DKIM_KEY_MISMATCH = "dkim-key-mismatch"
DMARC_RECORD_REMOVED = "dmarc-record-removed"
PTR_REMOVED = "ptr-removed"
TLSA_REMOVED = "tlsa-removed"
MX_RECORD_REMOVED = "mx-record-removed"
DNSSEC_BOGUS = "dnssec-signatures-expired"
SASL_DOWN = "submission-sasl-down"
MX_REJECTS_SPAM = "mx-rejects-all-as-spam"
WORLD_JUNKS = "world-files-into-junk"
WORLD_DEFERS = "world-defers-all"
OPEN_RELAY = "mx-open-relay"
DNSBL_LISTED = "srs-listed-on-dnsbl"
SUBMISSION_AUTH_BEFORE_TLS = "submission-auth-before-tls"
MX_TLS10 = "mx-tls10-accepted"
MX_BARE_LF = "mx-bare-lf-accepted"


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    breaks: str
    """What is wrong while the fault is active."""
    monitor_should_say: str
    reload: tuple[str, ...] = ()
    """Services that re-read their configuration after the fault is applied or healed."""
    restart: tuple[str, ...] = ()
    """Services that cannot reload and are restarted instead."""
    stop: tuple[str, ...] = ()
    """Services that are down while the fault is active."""
    next_second: bool = False
    """Wait after applying until the wall clock has entered its next whole second: for
    Dovecot, which stats a passwd-file at most once per second of that clock, so a lookup
    in the second of the change may still see the file it read before."""


def _stop_fault(service: str) -> Fault:
    return Fault(
        name=f"stop-{service}",
        breaks=f"the {service} service is stopped",
        monitor_should_say=_STOP_SAYS[service],
        stop=(service,),
    )


_STOP_SAYS = {
    KNOT: "DNS checks through the resolver fail (SERVFAIL) for every lab zone; mail queues "
    "grow because nobody can look up MX/TLSA records",
    UNBOUND: "the resolver refuses connections: every DNS check cannot run; DANE lookups "
    "and deliveries defer",
    DOVECOT: "IMAP 143/993 refused: canary mailbox cannot be read; LMTP deliveries defer; "
    "submission AUTH fails",
    POSTSRSD: "SRS lookups fail on the SRS host: forwarded mail is deferred there "
    "(4.3.0 lookup error) and the inbound-forward canary goes missing",
    OPENDKIM: "milter on the MX/SRS/submission unreachable: mail is tempfailed "
    "(milter_default_action=tempfail); canaries time out",
    OPENDMARC: "DMARC milter on the MX unreachable: the MX tempfails incoming mail",
    WORLD_OPENDKIM: "the world's DKIM milter is down: the world tempfails mail from us",
    WORLD_OPENDMARC: "the world's DMARC milter is down: the world tempfails mail from us",
    MTA_STS: "the MTA-STS policy cannot be fetched over HTTPS (connection refused)",
    POSTFIX_MX: "SMTP on the MX refused; the inbound-forward canary fails at its first hop",
    POSTFIX_SRS: "SMTP on the SRS host refused; forwards queue up on the MX",
    POSTFIX_SUBMISSION: "ports 587 and 465 refused; the outbound-submission canary fails",
    POSTFIX_WORLD: "the world's SMTP is refused; our outbound queues grow",
}

FAULTS: tuple[Fault, ...] = (
    *(_stop_fault(s) for s in SERVICES),
    Fault(
        MX_CERT_EXPIRED,
        "the MX serves an expired certificate (same key, so TLSA 3 1 1 still matches)",
        "smtp check on mx:25: certificate expired (PKIX); DANE-EE still matches",
        reload=(POSTFIX_MX,),
    ),
    Fault(
        SUBMISSION_465_WRONG_NAME,
        "port 465 serves a certificate for another host name (same key)",
        "smtp check on submit:465: certificate name mismatch (expected the submission name)",
        reload=(POSTFIX_SUBMISSION,),
    ),
    Fault(
        SRS_CERT_ROTATED,
        "the SRS host got a new key and certificate but its TLSA record was not updated",
        "TLSA for _25._tcp.srs does not match the served key; DANE senders (the MX) defer "
        "forwards: the inbound-forward canary is late",
        reload=(POSTFIX_SRS,),
    ),
    Fault(
        SPF_MISSING_SRS,
        "the domain's SPF record no longer lists the SRS host",
        "dns check: SPF does not cover the SRS address; the world's A-R says spf=fail for "
        "forwarded mail",
        reload=_DNS,
    ),
    Fault(
        SPF_TOO_MANY_LOOKUPS,
        "the domain's SPF record needs more than 10 DNS lookups",
        "dns check: SPF exceeds the 10-lookup limit (permerror); receivers say spf=permerror",
        reload=_DNS,
    ),
    Fault(
        DKIM_RECORD_REMOVED,
        "the DKIM key record of the fleet's selector is gone",
        "dns check: DKIM selector record missing; receivers say dkim=fail/permerror (no key)",
        reload=_DNS,
    ),
    Fault(
        DKIM_KEY_MISMATCH,
        "the signers use a key that differs from the one published in DNS",
        "DKIM signature does not verify against DNS (dkim=fail, body/signature mismatch); "
        "DMARC then rests on SPF alone",
        restart=(OPENDKIM,),
    ),
    Fault(
        DMARC_RECORD_REMOVED,
        "the domain's _dmarc record is gone",
        "dns check: no DMARC record; receivers say dmarc=none; no more aggregate reports",
        reload=_DNS,
    ),
    Fault(
        PTR_REMOVED,
        "the SRS host's address has no PTR record",
        "dns check: SRS address has no reverse name (FCrDNS fails)",
        reload=_DNS,
    ),
    Fault(
        TLSA_REMOVED,
        "the MX's TLSA record is gone",
        "dns check: no TLSA for _25._tcp of the MX; DANE senders fall back to unauthenticated TLS",
        reload=_DNS,
    ),
    Fault(
        MX_RECORD_REMOVED,
        "the domain has no MX record",
        "dns check: MX missing; mail to the domain defers/bounces",
        reload=_DNS,
    ),
    Fault(
        DNSSEC_BOGUS,
        "the fleet's zone is served with expired RRSIGs",
        "dns check: the validating resolver answers SERVFAIL (bogus: signature expired); "
        "DANE and all mail to the domain stop",
        reload=_DNS,
    ),
    Fault(
        SASL_DOWN,
        "the submission host's SASL backend (Dovecot's password database for the smtp "
        "service) is gone; IMAP logins still work",
        "smtp AUTH on 587/465 fails for every user (535 5.7.8 authentication failed); the "
        "outbound-submission canary cannot send while the mailbox check stays green",
        next_second=True,
    ),
    Fault(
        MX_REJECTS_SPAM,
        "the MX rejects every message after DATA as spam",
        "canary inbound-forward: rejected with 550 5.7.1 (spam); logs show rejects rising",
        reload=(POSTFIX_MX,),
    ),
    Fault(
        WORLD_JUNKS,
        "the world files the canary's mail into its Junk folder",
        "canary: message found in the \\Junk folder instead of INBOX (spam-foldered)",
        reload=(POSTFIX_WORLD,),
    ),
    Fault(
        WORLD_DEFERS,
        "the world answers 451 4.3.2 to all mail from us",
        "queues on the SRS and submission hosts grow; logs show status=deferred; canaries late",
        reload=(POSTFIX_WORLD,),
    ),
    Fault(
        OPEN_RELAY,
        "the MX's mynetworks is 0.0.0.0/0: it relays for anybody",
        "smtp check: the MX accepts RCPT to a foreign domain from an outside client (open relay)",
        reload=(POSTFIX_MX,),
    ),
    Fault(
        DNSBL_LISTED,
        "the SRS host's address is listed on the lab DNSBL (bl.test)",
        "dns check: sending address listed on bl.test; the world rejects our forwards with "
        "554 5.7.1 blocked using bl.test",
        # smtpd caches DNSBL answers per process: the world's Postfix reloads to see it.
        reload=(*_DNS, POSTFIX_WORLD),
    ),
    Fault(
        SUBMISSION_AUTH_BEFORE_TLS,
        "port 587 makes TLS optional and offers AUTH PLAIN/LOGIN before STARTTLS",
        "smtp check auth_before_tls on submit:587: EHLO lists AUTH before STARTTLS; "
        "plaintext_auth: AUTH PLAIN answered 334 in the clear (passwords readable on the wire)",
        reload=(POSTFIX_SUBMISSION,),
    ),
    Fault(
        MX_TLS10,
        "the MX accepts TLS 1.0 and 1.1 and their CBC-SHA1 suites (Postfix's defaults)",
        "smtp check tls_quality on mx:25: TLS 1.0 and 1.1 accepted; cipher suites NCSC-NL "
        "rates insufficient (e.g. ECDHE-ECDSA-AES128-SHA)",
        reload=(POSTFIX_MX,),
    ),
    Fault(
        MX_BARE_LF,
        "the MX ends DATA at <LF>.<LF> (smtpd_forbid_bare_newline = no): SMTP smuggling, "
        "CVE-2023-51764",
        "smtp check bare_lf on mx:25: the server ended DATA at a bare <LF>.<LF>",
        reload=(POSTFIX_MX,),
    ),
)

BY_NAME: dict[str, Fault] = {f.name: f for f in FAULTS}
