"""A streaming look at an aggregate report before parsedmarc builds it in memory.

parsedmarc (xmltodict) holds the whole document as dictionaries, so what reaches it must
already be known to be small, entity-free and shaped like a report. One pass of expat,
with no tree, checks that: no DOCTYPE or entity declaration (so no XXE and no billion
laughs, refused before any expansion), the encoding holds, the root is ``<feedback>``,
at most ``max_records`` records, and the evaluated results are words RFC 7489 allows.
"""

from __future__ import annotations

import codecs
import re
from xml.parsers import expat

from exporters.dmarc.errors import InvalidReport, Reason

CHUNK = 1 << 20
DISPOSITIONS = {"none", "quarantine", "reject", "pass"}
"""RFC 7489 appendix C (none, quarantine, reject) and RFC 9990 (pass)."""
RESULTS = {"pass", "fail"}
_SCHEMA_TAG = re.compile(rb"</?xs:schema[^<>]*>")
"""A stray, unclosed ``<xs:schema>`` tag some reporters put around the report; parsedmarc
removes it with this pattern, and so does :func:`strip_schema_tags` before the scan."""
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def declared_encoding(data: bytes) -> str:
    """The encoding the XML declaration names; UTF-8 when it names none."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    match = _DECLARED.match(data[:256])
    return match.group(1).decode("ascii").lower() if match else "utf-8"


def strip_schema_tags(data: bytes) -> bytes:
    return _SCHEMA_TAG.sub(b"", data) if b"xs:schema" in data else data


def decode(data: bytes) -> str:
    """The document as text, strictly in its declared encoding."""
    encoding = declared_encoding(data)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidReport(Reason.ENCODING, f"unknown encoding {encoding!r}") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidReport(
            Reason.ENCODING, f"byte {exc.start} is not valid {encoding.upper()}"
        ) from None


class _Scan:
    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self.records = 0
        self.path: list[str] = []
        self.text: list[str] = []

    def start(self, name: str, _attrs: object) -> None:
        local = name.rpartition(":")[2]
        if not self.path and local != "feedback":
            raise InvalidReport(Reason.XML, f"root element is <{local}>, not <feedback>")
        if local == "record" and len(self.path) == 1:
            self.records += 1
            if self.records > self.max_records:
                raise InvalidReport(
                    Reason.TOO_MANY_RECORDS, f"more than {self.max_records} records"
                )
        self.path.append(local)
        self.text.clear()

    def end(self, _name: str) -> None:
        local = self.path.pop()
        if len(self.path) >= 2 and self.path[-1] == "policy_evaluated":
            value = "".join(self.text).strip()
            allowed = DISPOSITIONS if local == "disposition" else RESULTS
            if local in ("disposition", "dkim", "spf") and value not in allowed:
                raise InvalidReport(
                    Reason.SCHEMA,
                    f"policy_evaluated {local} is {value[:40]!r}, not one of "
                    f"{', '.join(sorted(allowed))} (RFC 7489 appendix C)",
                )
        self.text.clear()

    def chars(self, data: str) -> None:
        if len(self.path) >= 2 and self.path[-2] == "policy_evaluated":
            self.text.append(data)


def _refuse_dtd(*_args: object) -> None:
    raise InvalidReport(Reason.DTD, "the report declares a DOCTYPE or entities; refused unread")


def _refuse_entity(*_args: object) -> int:
    raise InvalidReport(Reason.DTD, "the report refers to an external entity; refused unread")


def scan(data: bytes, max_records: int) -> int:
    """Check the document; return its record count or raise :class:`InvalidReport`."""
    state = _Scan(max_records)
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_entity
    parser.StartElementHandler = state.start
    parser.EndElementHandler = state.end
    parser.CharacterDataHandler = state.chars
    view = memoryview(data)
    try:
        for offset in range(0, len(data), CHUNK):
            parser.Parse(bytes(view[offset : offset + CHUNK]), False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise InvalidReport(
            Reason.XML, f"not well-formed XML at line {exc.lineno}: {expat.ErrorString(exc.code)}"
        ) from None
    if state.records == 0:
        raise InvalidReport(Reason.XML, "the report holds no <record>")
    return state.records
