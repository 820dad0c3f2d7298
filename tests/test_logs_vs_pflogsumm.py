"""``mailprobe logs`` beside the real pflogsumm on the same public logs.

pflogsumm (Debian's 1.1.5) runs on each file and its text is parsed; the report must
give the same totals, the same senders, recipients and domains with the same message
counts, bytes and delays. Where the two differ on purpose the difference is computed
from the log itself, with the reason next to it (docs/postfix-logs.md, "Compared with
pflogsumm").
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.shared_data import require

LOGS = (
    "youyo-postfix-log-parser_test.log",
    "youyo-postfix-log-parser_test-iso8601.log",
    "postfix_exporter-tests_lines.log",
    "sergeymakinen-postfix_exporter_mail.log",
    "adyekjaer-postfix-exporter-py_mail_bsd.log",
    "adyekjaer-postfix-exporter-py_mail_iso.log",
)
KUMINA = "postfix_exporter-tests_lines.log"
"""The lines of kumina's (and Hsn723's) postfix_exporter tests."""

pytestmark = pytest.mark.skipif(
    shutil.which("pflogsumm") is None, reason="pflogsumm (Debian package pflogsumm) is missing"
)

_TOTAL = re.compile(r"^\s*(\d+)([km ]?)\s+(\S.*?)\s*(?:\(.*\))?$")


def as_pflogsumm(seconds: float) -> str:
    """A delay the way pflogsumm prints it (its adj_time_units, then ``%.1f``)."""
    if seconds > 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds > 60:
        return f"{seconds / 60:.1f} m"
    return f"{seconds:.1f} s"


def pflogsumm(path: Path) -> dict[str, Any]:
    """Grand totals and the domain and user tables of pflogsumm's report on ``path``."""
    text = subprocess.run(
        ["pflogsumm", str(path)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    lines = text.splitlines()
    out: dict[str, Any] = {"totals": {}, "tables": {}}
    start = lines.index("Grand Totals")
    end = next(i for i, line in enumerate(lines) if line.startswith("Per-") and i > start)
    for line in lines[start + 2 : end]:
        m = _TOTAL.match(line)
        if m and m[3] != "messages":
            assert m[2] == " " or not m[2], f"pflogsumm scaled {line!r}: use a smaller log"
            out["totals"][m[3]] = int(m[1])
    deferrals = re.search(r"deferred\s+\((\d+)\s+deferrals\)", text)
    out["totals"]["deferrals"] = int(deferrals[1]) if deferrals else 0
    for title in (
        "Senders by message count",
        "Recipients by message count",
        "Senders by message size",
        "Recipients by message size",
    ):
        out["tables"][title] = sorted(
            (int(n), who) for n, who in (row.split() for row in _section(lines, title))
        )
    delivery = []
    for row in _section(lines, "Host/Domain Summary: Message Delivery", skip=2):
        sent, size, defers, avg, avg_unit, top, top_unit, domain = row.split()
        delivery.append(
            (domain, int(sent), int(size), int(defers), f"{avg} {avg_unit}", f"{top} {top_unit}")
        )
    out["tables"]["delivery"] = sorted(delivery)
    out["tables"]["received"] = sorted(
        (domain, int(n), int(size))
        for n, size, domain in (
            row.split() for row in _section(lines, "Host/Domain Summary: Messages Received", 2)
        )
    )
    return out


def _section(lines: list[str], title: str, skip: int = 0) -> Iterator[str]:
    """The lines under ``title`` and its underline, up to the next blank line."""
    for i, line in enumerate(lines):
        if line.strip() == title:
            for row in lines[i + 2 + skip :]:
                if not row.strip():
                    return
                yield row
            return


def mailprobe(path: Path) -> dict[str, Any]:
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        assert main(["logs", "--format", "json", str(path)]) == 0
    finally:
        sys.stdout = saved
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILPROBE_CONFIG", raising=False)


def _count(path: Path, pattern: str) -> int:
    found = re.compile(pattern)
    return sum(1 for line in path.read_text(errors="replace").splitlines() if found.search(line))


@pytest.mark.parametrize("name", LOGS)
def test_totals_agree(name: str) -> None:
    path = require("postfix", name)
    theirs, ours = pflogsumm(path)["totals"], mailprobe(path)
    messages = ours["messages"]
    for key in ("received", "delivered", "forwarded", "deferred", "bounced", "deferrals"):
        assert messages[key] == theirs[key], key
    # pflogsumm 1.1.5 misses smtpd's milter-reject (its pattern wants "QID: reject:");
    # it counts "NOQUEUE: reject: Unsupported", a made-up line that is no Postfix shape.
    milter = _count(path, r"/smtpd\[\d+\]: \w+: milter-reject: ")
    made_up = _count(path, r": NOQUEUE: reject: Unsupported$")
    assert messages["rejected"] == theirs["rejected"] + milter - made_up
    assert messages["bytes_received"] == theirs["bytes received"]
    # A synthetic log logs "removed" before the delivery: mailprobe forgets a size when
    # qmgr removes the message (its memory stays bounded); pflogsumm keeps every size.
    early = name.startswith("adyekjaer")
    assert messages["bytes_delivered"] == (0 if early else theirs["bytes delivered"])
    distinct = ours["distinct"]
    assert distinct["senders"] == theirs["senders"]
    assert distinct["recipients"] == theirs["recipients"]
    assert distinct["sender_domains"] == theirs["sending hosts/domains"]
    assert distinct["recipient_domains"] == theirs["recipient hosts/domains"]


@pytest.mark.parametrize("name", LOGS)
def test_senders_recipients_and_domains_agree(name: str) -> None:
    path = require("postfix", name)
    theirs, top = pflogsumm(path)["tables"], mailprobe(path)["top"]

    def rows(key: str, field: str) -> list[tuple[int, str]]:
        return sorted((row[field], row["address"]) for row in top[key])

    assert rows("senders_by_count", "messages") == theirs["Senders by message count"]
    assert rows("recipients_by_count", "messages") == theirs["Recipients by message count"]
    assert rows("senders_by_size", "bytes") == theirs["Senders by message size"]
    if not name.startswith("adyekjaer"):  # sizes forgotten at "removed", as above
        assert rows("recipients_by_size", "bytes") == theirs["Recipients by message size"]
    delivery = sorted(
        (
            row["domain"],
            row["messages"],
            row["bytes"],
            row["deferrals"],
            as_pflogsumm(row["average_delay_seconds"] or 0.0),
            as_pflogsumm(row["max_delay_seconds"]),
        )
        for row in top["recipient_domains"]
    )
    expected = [
        (d, n, 0 if name.startswith("adyekjaer") else b, *rest)
        for d, n, b, *rest in theirs["delivery"]
    ]
    assert delivery == expected
    received = sorted(
        (row["domain"], row["messages"], row["bytes"]) for row in top["sender_domains"]
    )
    assert received == theirs["received"]


def test_the_public_logs_give_pflogsumm_something_to_compare() -> None:
    """The comparisons above are not all empty: senders, sizes and delays are there."""
    path = require("postfix", LOGS[0])
    tables = pflogsumm(path)["tables"]
    assert len(tables["Senders by message count"]) == 3
    assert tables["Recipients by message size"][-1] == (309891, "test@example.ddd")
    assert ("example.ddd", 1, 309891, 0, "3.4 s", "3.4 s") in tables["delivery"]


def test_kumina_sample_rejects_count_postscreen_connections() -> None:
    """pflogsumm's 4: one postscreen RCPT reject and three connections postscreen
    refused (too many connections, all screening / server ports busy)."""
    path = require("postfix", KUMINA)
    report = mailprobe(path)
    assert report["messages"]["rejected"] == pflogsumm(path)["totals"]["rejected"] == 4
    assert report["messages"]["rejected_connections"] == 3
    # pflogsumm lists 1.2.3.4 under each of the four reasons; the report ranks clients
    assert report["top"]["rejected_clients"] == [{"address": "1.2.3.4", "rejects": 4}]
    day = next(row for row in report["hourly"] if row["rejected"])
    assert day["rejected"] == 4


def test_text_report_shows_addresses_bytes_and_the_whole_period() -> None:
    kumina = require("postfix", KUMINA)
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        assert main(["logs", str(kumina), str(require("postfix", LOGS[0]))]) == 0
    finally:
        sys.stdout = saved
    text = out.getvalue()
    assert "client [] " not in text and "[]" not in text
    assert "client [address] blocked using zen.spamhaus.org" in text
    assert "     316149  bytes received (308.7 KiB)" in text
    header = text.splitlines()[0]
    days = re.findall(r"^  (\d{4}-\d\d-\d\d) ", text, re.MULTILINE)
    assert header.split()[3].startswith(min(days)) and header.split()[5].startswith(max(days))


def test_average_delay_is_postfix_delay_not_log_stamps() -> None:
    """Postfix's own delay= (0.1 s and finer) against the one-second log stamps: the
    youyo log's four deliveries have delay= 1.7, 1.7, 0.1 and 3.4 seconds."""
    report = mailprobe(require("postfix", LOGS[0]))
    delay = report["delivery_delay"]
    assert delay == {"count": 4, "average_seconds": 1.725, "max_seconds": 3.4}
