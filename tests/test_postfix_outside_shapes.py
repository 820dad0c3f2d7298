"""Line shapes first seen in real Postfix logs from outside this repository.

Each example is one anonymised line of the shape a public log showed unsupported
(docs/postfix-logs.md, "Real logs from outside this repository", names the sources);
the test asserts what the parser makes of it.
"""

from __future__ import annotations

import pytest

from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.programs import ProgramTable, ServiceMap

LINES = {
    # Postfix 2.2-2.4 TLS client: the server is named without [address]
    "setting_up_bare": "Feb  5 12:08:06 borg postfix/smtp[20250]: setting up TLS connection"
    " to smtp.example.com",
    "cert_failed_bare": "Feb  5 12:08:06 borg postfix/smtp[20250]: certificate verification"
    " failed for smtp.example.com: num=20:unable to get local issuer certificate",
    "ssl_connect_bare": "Feb  5 12:08:06 borg postfix/smtp[20250]: SSL_connect error to"
    " smtp.example.com: -1",
    # later versions name host[address]:port in the same line
    "setting_up_peer": "Feb  5 12:08:06 mx postfix/smtp[20250]: setting up TLS connection"
    " to mx.example.com[192.0.2.7]:25",
    # smtpd without a readable CA file: TLS is off for the whole process
    "ca_not_loaded": "Oct  3 20:01:43 mx postfix/smtpd[16145]: cannot load Certificate"
    " Authority data: disabling TLS support",
    # the postfix command's compatibility_level notice at start and reload
    "compat_running": "Oct  2 18:37:35 mx postfix[1086537]: Postfix is running with"
    " backwards-compatible default settings",
    "compat_using": "Oct  2 18:37:35 mx postfix-out[1086537]: Postfix is using"
    " backwards-compatible default settings",
    "compat_see": "Oct  2 18:37:35 mx postfix[1086537]: See"
    " http://www.postfix.org/COMPATIBILITY_README.html for details",
    "compat_disable": "Oct  2 18:37:35 mx postfix[1086537]: To disable backwards"
    ' compatibility use "postconf compatibility_level=2" and "postfix reload"',
    # PIX workarounds for a peer an anonymiser reduced to host:port (and the usual form)
    "pix_bare": "May 18 22:31:10 mx postfix/smtp[30629]: 0EA5228A: enabling PIX workarounds:"
    " disable_esmtp delay_dotcrlf for relay.example.com:25",
    "pix_peer": "May 18 22:31:10 mx postfix/smtp[30629]: 0EA5228A: enabling PIX workarounds:"
    " disable_esmtp delay_dotcrlf for relay.example.com[192.0.2.9]:25",
}


def _parse(line: str) -> tuple[str, Kind, dict[str, str | None]]:
    """(daemon label, kind, named groups) of one syslog line."""
    program, _, rest = line.split(maxsplit=4)[4].partition("[")
    message = rest.split("]: ", 1)[1]
    found = ProgramTable(ServiceMap({})).lookup(program)
    parsed = found.parse(message)
    assert parsed is not None, line
    kind, match = parsed
    return found.daemon, kind, match.groupdict()


@pytest.mark.parametrize(
    ("name", "daemon", "kind", "fields"),
    [
        ("setting_up_bare", "smtp", Kind.INFO, {"server": "smtp.example.com"}),
        ("setting_up_peer", "smtp", Kind.INFO, {"relay_host": "mx.example.com"}),
        (
            "cert_failed_bare",
            "smtp",
            Kind.TLS_FAILED,
            {"event": "certificate verification failed", "server": "smtp.example.com"},
        ),
        (
            "ssl_connect_bare",
            "smtp",
            Kind.TLS_FAILED,
            {"event": "SSL_connect error", "server": "smtp.example.com", "reason": "-1"},
        ),
        (
            "ca_not_loaded",
            "smtpd",
            Kind.TLS_FAILED,
            {"event": "cannot load Certificate Authority data"},
        ),
        ("compat_running", "postfix", Kind.INFO, {}),
        ("compat_using", "postfix", Kind.INFO, {}),
        ("compat_see", "postfix", Kind.INFO, {}),
        ("compat_disable", "postfix", Kind.INFO, {}),
        (
            "pix_bare",
            "smtp",
            Kind.INFO,
            {"workaround": "disable_esmtp delay_dotcrlf", "server": "relay.example.com:25"},
        ),
        ("pix_peer", "smtp", Kind.INFO, {"relay_host": "relay.example.com", "relay_port": "25"}),
    ],
)
def test_outside_shape_is_parsed(
    name: str, daemon: str, kind: Kind, fields: dict[str, str]
) -> None:
    found_daemon, found_kind, groups = _parse(LINES[name])
    assert (found_daemon, found_kind) == (daemon, kind)
    assert {key: groups[key] for key in fields} == fields


def test_outside_shapes_count_as_understood() -> None:
    aggregator = LogAggregator()
    aggregator.feed_lines(line.encode() for line in LINES.values())
    snapshot = aggregator.snapshot()
    assert (snapshot.lines.postfix, snapshot.lines.unsupported) == (len(LINES), 0)


def test_postfix_script_success_line_stays_unsupported() -> None:
    """'success: ALL OKK' (lHydra/postfix_parser's sample) is no line postfix-script
    writes: it stays unsupported rather than being claimed by a loose rule."""
    aggregator = LogAggregator()
    aggregator.feed_lines(
        [b"Feb 20 22:56:51 mframe1 postfix/postfix-script[4735]: success: ALL OKK"]
    )
    assert aggregator.snapshot().lines.unsupported == 1


def test_smtpd_without_tls_files_counts_as_a_named_tls_failure() -> None:
    aggregator = LogAggregator()
    aggregator.feed_lines(
        [
            LINES["ca_not_loaded"].encode(),
            b"Oct  3 20:01:43 mx postfix/smtpd[16145]: cannot load RSA certificate and key"
            b" data: disabling TLS support",
        ]
    )
    failures = aggregator.snapshot().counters["tls_failures"]
    assert sorted(event for (_prog, event) in failures) == [
        "ca_unavailable",
        "certificate_unavailable",
    ]
