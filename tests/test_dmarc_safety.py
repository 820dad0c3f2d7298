"""Hostile inputs refused before parsedmarc sees them, each with its reason."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest

from exporters.dmarc.errors import Reason
from exporters.dmarc.limits import Limits
from exporters.dmarc.pool import analyse
from tests.dmarc_helpers import aggregate_xml, record, report_mail

SMALL = Limits(max_message_bytes=1 << 20, max_report_bytes=1 << 20, max_records=10)
GOOD = aggregate_xml(
    "example.test", "r", 0, 86399, [record("192.0.2.1", 1, "pass", "pass", "example.test")]
)

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<feedback>&lol3;</feedback>"""


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (XXE, Reason.DTD),
        (LAUGHS, Reason.DTD),
        (gzip.compress(b" " * (2 << 20)), Reason.BOMB),
        (_zip("r.xml", b" " * (2 << 20)), Reason.BOMB),
        (gzip.compress(GOOD)[:-12], Reason.ARCHIVE),
        (
            GOOD.replace(
                b"</feedback>",
                b"".join(record("192.0.2.1", 1, "pass", "pass", "x").encode() for _ in range(11))
                + b"</feedback>",
            ),
            Reason.TOO_MANY_RECORDS,
        ),
        (
            GOOD.replace(b"example.test</header_from>", b"ex\xffample</header_from>"),
            Reason.ENCODING,
        ),
        (GOOD.replace(b"<dkim>pass</dkim>", b"<dkim>PASS</dkim>"), Reason.SCHEMA),
        (b"<?xml version='1.0'?><html/>", Reason.XML),
        (b"\x00\x01binary", Reason.NO_REPORT),
    ],
    ids=[
        "xxe",
        "billion-laughs",
        "gzip-bomb",
        "zip-bomb",
        "truncated-gzip",
        "too-many-records",
        "non-utf8",
        "upper-case-result",
        "not-feedback",
        "binary",
    ],
)
def test_hostile_report_is_refused_with_its_reason(data: bytes, reason: Reason) -> None:
    result = analyse(data, False, SMALL)
    assert result.report is None
    assert result.reason is reason, result.detail
    assert result.detail


def test_a_mail_above_the_cap_is_refused_unread() -> None:
    mail = report_mail(GOOD, "<big@rep.test>") + b"x" * (1 << 20)
    result = analyse(mail, True, SMALL)
    assert result.reason is Reason.TOO_LARGE


def test_a_latin1_report_that_says_so_is_read() -> None:
    xml = GOOD.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(
        b"<org_name>rep.test", b"<org_name>r\xe9p.test"
    )
    result = analyse(xml, False, SMALL)
    assert result.report is not None
    assert getattr(result.report, "org", "") == "r\u00e9p.test"
