"""``mailprobe dmarc import``: the public samples, idempotency, duplicates, other domains."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from exporters.dmarc.errors import Reason
from exporters.dmarc.store import ItemOutcome
from monitor.dmarc.importing import import_paths
from monitor.state import STATE_FILE_NAME
from tests.dmarc_helpers import aggregate_xml, dmarc_config, record, report_mail

BROKEN = {
    "aggregate/invalid_xml.xml": Reason.XML,
    "aggregate/invalid_utf_8.xml": Reason.ENCODING,
    "aggregate_invalid/report_with_upper_cased_pass.xml": Reason.SCHEMA,
    "misc/empty.xml": Reason.NO_REPORT,
}
"""The samples SOURCES.txt calls deliberately broken, and why each must be refused."""
NOT_SAMPLES = {"SOURCES.txt", "LICENSE"}


def _samples(root: Path) -> list[Path]:
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in NOT_SAMPLES)
    assert found, f"no samples under {root}"
    return found


def _xml_of(path: Path) -> bytes | None:
    """The XML of a plain, gzip or zip sample, read with the standard library only."""
    import gzip
    import zipfile

    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            return z.read(z.namelist()[0])
    return data if path.suffix == ".xml" else None


def _expected(root: Path) -> tuple[set[str], dict[tuple[str, str, int, int], tuple[str, int]]]:
    """Domains of every valid sample, and each distinct aggregate report's message total,
    from the reports' contents (ElementTree, not the code under test)."""
    domains: set[str] = set()
    reports: dict[tuple[str, str, int, int], tuple[str, int]] = {}
    for path in _samples(root):
        rel = str(path.relative_to(root))
        if rel in BROKEN:
            continue
        if path.suffix == ".json":
            for policy in json.loads(path.read_text())["policies"]:
                domains.add(policy["policy"]["policy-domain"].lower())
            continue
        data = _xml_of(path)
        if data is None:
            continue
        text = data.decode()
        for tag in ("<xs:schema", "</xs:schema>"):
            if tag in text:
                start = text.index(tag)
                text = text[:start] + text[text.index(">", start) + 1 :]
        tree = ET.fromstring(text.strip())
        meta = tree.find("{*}report_metadata")
        assert meta is not None
        domain = (tree.findtext("{*}policy_published/{*}domain") or "").lower()
        domains.add(domain)
        key = (
            (meta.findtext("{*}org_name") or "").strip(),
            (meta.findtext("{*}report_id") or "").strip(),
            int(meta.findtext("{*}date_range/{*}begin") or 0),
            int(meta.findtext("{*}date_range/{*}end") or 0),
        )
        reports[key] = (domain, sum(int(c.text or 0) for c in tree.findall(".//{*}count")))
    return domains, reports


def _db(state: Path) -> sqlite3.Connection:
    return sqlite3.connect(state / STATE_FILE_NAME)


def test_every_sample_is_accepted_or_refused_as_its_folder_says(
    shared_data: Path, tmp_path: Path
) -> None:
    root = shared_data / "dmarc"
    domains, reports = _expected(root)
    for mail_domain in ("borschow.com", "domain.de", "cardinal.com", "example.com"):
        domains.add(mail_domain)  # the .eml samples' domains (read from their names/bodies)
    config = dmarc_config(tmp_path / "state", sorted(domains))
    results = asyncio.run(import_paths(config, _samples(root)))
    by_origin = {str(Path(r.origin).relative_to(root)): r for r in results}
    for rel, reason in BROKEN.items():
        assert by_origin[rel].outcome is ItemOutcome.INVALID, rel
        assert by_origin[rel].reason is reason, (rel, by_origin[rel].detail)
        assert by_origin[rel].detail
    accepted = {rel: r for rel, r in by_origin.items() if rel not in BROKEN}
    bad = {rel: r.detail for rel, r in accepted.items() if r.outcome not in _KEPT}
    assert not bad, bad
    with _db(tmp_path / "state") as db:
        stored = {
            (rid, domain): total
            for rid, domain, total in db.execute(
                "SELECT p.report_id, p.domain, SUM(r.count)"
                " FROM dmarc_reports p JOIN dmarc_records r ON r.report = p.id"
                " WHERE p.kind = 'aggregate' GROUP BY p.id"
            )
        }
        kinds = dict(db.execute("SELECT kind, COUNT(*) FROM dmarc_reports GROUP BY kind"))
    # Keyed by report id: parsedmarc names an org left empty after the reporter's address.
    for (_org, rid, _begin, _end), (domain, total) in reports.items():
        assert stored[(rid, domain)] == total, rid
    # The one aggregate report that came in a mail (Google's, zipped) is stored too.
    assert set(stored) == {(rid, d) for (_o, rid, _b, _e), (d, _n) in reports.items()} | {
        ("949348866075514174", "borschow.com")
    }
    tls_keys = {
        (doc["organization-name"], doc["report-id"])
        for doc in (json.loads(p.read_text()) for p in root.rglob("*.json"))
    }
    assert kinds["tls"] == len(tls_keys)  # rfc8460.json is also cry-inc's rfc-example.json
    assert kinds["feedback"] == len(list((root / "failure").glob("*.eml")))


_KEPT = {ItemOutcome.NEW, ItemOutcome.DUPLICATE}


def _counts(state: Path) -> dict[str, int]:
    with _db(state) as db:
        return {
            table: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("dmarc_reports", "dmarc_records", "dmarc_items")
        }


def test_importing_the_same_files_twice_changes_nothing(tmp_path: Path) -> None:
    files = tmp_path / "in"
    files.mkdir()
    for n in range(3):
        xml = aggregate_xml(
            "example.test",
            f"r{n}",
            1000 * n,
            1000 * n + 999,
            [record("192.0.2.1", n + 1, "pass", "pass", "example.test")],
        )
        (files / f"r{n}.xml").write_bytes(xml)
    state = tmp_path / "state"
    config = dmarc_config(state, ["example.test"])
    first = asyncio.run(import_paths(config, [files]))
    assert [r.outcome for r in first] == [ItemOutcome.NEW] * 3
    before = _counts(state)
    assert before == {"dmarc_reports": 3, "dmarc_records": 3, "dmarc_items": 3}
    second = asyncio.run(import_paths(config, [files]))
    assert [r.outcome for r in second] == [ItemOutcome.SEEN] * 3
    assert _counts(state) == before


def test_the_same_report_in_a_second_mail_is_a_duplicate(tmp_path: Path) -> None:
    xml = aggregate_xml(
        "example.test", "same", 0, 86399, [record("192.0.2.66", 3, "fail", "fail", "example.test")]
    )
    (tmp_path / "a.eml").write_bytes(report_mail(xml, "<a@rep.test>"))
    (tmp_path / "b.eml").write_bytes(report_mail(xml, "<b@rep.test>"))
    state = tmp_path / "state"
    config = dmarc_config(state, ["example.test"])
    results = asyncio.run(import_paths(config, [tmp_path / "a.eml", tmp_path / "b.eml"]))
    assert sorted(r.outcome for r in results) == [ItemOutcome.DUPLICATE, ItemOutcome.NEW]
    assert _counts(state) == {"dmarc_reports": 1, "dmarc_records": 1, "dmarc_items": 2}


def test_reports_about_other_domains_are_set_aside(tmp_path: Path) -> None:
    xml = aggregate_xml(
        "elsewhere.test", "x", 0, 86399, [record("192.0.2.1", 1, "pass", "pass", "elsewhere.test")]
    )
    (tmp_path / "x.xml").write_bytes(xml)
    state = tmp_path / "state"
    [result] = asyncio.run(
        import_paths(dmarc_config(state, ["example.test"]), [tmp_path / "x.xml"])
    )
    assert result.outcome is ItemOutcome.OTHER_DOMAIN
    assert "elsewhere.test" in result.detail
    assert _counts(state) == {"dmarc_reports": 0, "dmarc_records": 0, "dmarc_items": 1}


def test_import_command_reports_refusals_and_exit_code(tmp_path: Path) -> None:
    good = aggregate_xml(
        "example.test", "g", 0, 86399, [record("192.0.2.1", 1, "pass", "pass", "example.test")]
    )
    (tmp_path / "good.xml").write_bytes(good)
    (tmp_path / "bad.xml").write_bytes(b"<feedback><record>")
    config = tmp_path / "c.yml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\ndmarc:\n  domains: [example.test]\n  workers: 1\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "dmarc",
            "import",
            "-c",
            str(config),
            "--format",
            "json",
            str(tmp_path / "good.xml"),
            str(tmp_path / "bad.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    assert out["outcomes"] == {"invalid": 1, "new": 1}
    [refused] = out["refused"]
    assert refused["reason"] == "bad_xml" and refused["origin"].endswith("bad.xml")


@pytest.mark.parametrize("missing", ["nothing-here.xml"])
def test_import_of_a_missing_path_cannot_run(tmp_path: Path, missing: str) -> None:
    config = tmp_path / "c.yml"
    config.write_text(f"state_dir: {tmp_path / 's'}\ndmarc:\n  domains: [example.test]\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "dmarc",
            "import",
            "-c",
            str(config),
            str(tmp_path / missing),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3
    assert missing in run.stderr


def test_feedback_mails_are_kept_readable_by_mailprobe_only(tmp_path: Path) -> None:
    from tests.dmarc_helpers import arf_mail

    mail = arf_mail("example.test", "192.0.2.66")
    (tmp_path / "arf.eml").write_bytes(mail)
    state = tmp_path / "state"
    [result] = asyncio.run(
        import_paths(dmarc_config(state, ["example.test"]), [tmp_path / "arf.eml"])
    )
    assert result.outcome is ItemOutcome.NEW
    with _db(state) as db:
        [(kept,)] = db.execute("SELECT kept_path FROM dmarc_reports WHERE kind = 'feedback'")
    path = Path(kept)
    assert path.read_bytes() == mail
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_an_item_seen_again_says_what_it_was(tmp_path: Path) -> None:
    """What lets the mailbox file a message whose report was committed before a crash."""
    good = aggregate_xml(
        "example.test", "k", 0, 86399, [record("192.0.2.1", 1, "pass", "pass", "example.test")]
    )
    (tmp_path / "good.xml").write_bytes(good)
    (tmp_path / "bad.xml").write_bytes(b"<feedback>")
    files = [tmp_path / "good.xml", tmp_path / "bad.xml"]
    config = dmarc_config(tmp_path / "state", ["example.test"])
    first = {Path(r.origin).name: r.kind for r in asyncio.run(import_paths(config, files))}
    again = asyncio.run(import_paths(config, files))
    assert (
        {Path(r.origin).name: r.kind for r in again}
        == first
        == {
            "good.xml": "aggregate",
            "bad.xml": "invalid",
        }
    )
    assert {r.outcome for r in again} == {ItemOutcome.SEEN}


def test_an_mbox_is_read_message_by_message(tmp_path: Path) -> None:
    import mailbox

    xml = aggregate_xml(
        "example.test", "m1", 0, 86399, [record("192.0.2.1", 2, "pass", "pass", "example.test")]
    )
    box = mailbox.mbox(tmp_path / "reports.mbox")
    box.add(report_mail(xml, "<m1@rep.test>"))
    box.add(b"From: someone@rep.test\nSubject: hello\n\nnot a report\n")
    box.close()
    results = asyncio.run(
        import_paths(
            dmarc_config(tmp_path / "state", ["example.test"]), [tmp_path / "reports.mbox"]
        )
    )
    assert sorted((r.origin.rpartition("#")[2], r.outcome, r.reason) for r in results) == [
        ("0", ItemOutcome.NEW, None),
        ("1", ItemOutcome.INVALID, Reason.NO_REPORT),
    ]
