"""Hostile inputs in one ``mailprobe dmarc import`` batch: each is refused with its reason
or parsed, the batch goes on to the good report after them, and the peak RSS stays
below 200 MB, for the largest process and for the whole tree (the importer and its
parser worker, with the default settings).

The largest process's peak comes from GNU time (``%M``), a small launcher whose ``wait4``
sees the importer and the worker it reaped, never the test's own memory. The tree's is
bounded from above by the sum of every process's own high-water mark (VmHWM), read from
/proc while the import runs.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.dmarc_helpers import aggregate_xml, record

GIB = 1 << 30
MIB = 1 << 20
RSS_LIMIT_KB = 200 * 1024
TIME = "/usr/bin/time"
ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "example.test"

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>"""

LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'.encode()
        for n in range(1, 10)
    )
    + b"]>\n<feedback>&lol9;</feedback>\n"
)


def _spaces_gzip(path: Path, size: int) -> None:
    """A single-member gzip of ``size`` spaces, written as it is compressed."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * MIB
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(deflate.compress(chunk))
        out.write(deflate.flush())


def _spaces_zip(path: Path, size: int) -> None:
    chunk = b" " * MIB
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("report.xml", "w", force_zip64=True) as member,
    ):
        for _ in range(size // MIB):
            member.write(chunk)


def _records_xml(count: int, report_id: str) -> list[bytes]:
    head, _, tail = aggregate_xml(DOMAIN, report_id, 0, 86399, ["@@"]).partition(b"@@")
    row = record("198.51.100.7", 1, "fail", "fail", DOMAIN).encode()
    return [head, *([row] * count), tail]


def _gzip_parts(path: Path, parts: list[bytes]) -> None:
    with gzip.open(path, "wb", compresslevel=6) as out:
        for part in parts:
            out.write(part)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    files = {
        "xxe": folder / "01-xxe.xml",
        "laughs": folder / "02-laughs.xml",
        "gzip_1g": folder / "03-bomb.xml.gz",
        "zip_1g": folder / "04-bomb.zip",
        "xml_50m": folder / "05-big.xml",
        "xml_50m_gz": folder / "06-big.xml.gz",
        "million": folder / "07-million.xml.gz",
        "too_many": folder / "08-records.xml",
        "non_utf8": folder / "09-latin.xml",
        "at_cap": folder / "10-at-cap.xml",
        "good": folder / "11-good.xml",
    }
    files["xxe"].write_bytes(XXE)
    files["laughs"].write_bytes(LAUGHS)
    _spaces_gzip(files["gzip_1g"], GIB)
    _spaces_zip(files["zip_1g"], GIB)
    fifty = _records_xml(50 * MIB // len(_records_xml(1, "x")[1]), "fifty")
    files["xml_50m"].write_bytes(b"".join(fifty))
    _gzip_parts(files["xml_50m_gz"], fifty)
    _gzip_parts(files["million"], _records_xml(1_000_000, "million"))
    files["too_many"].write_bytes(b"".join(_records_xml(5_001, "many")))
    files["non_utf8"].write_bytes(
        aggregate_xml(
            DOMAIN, "latin", 0, 86399, [record("192.0.2.1", 1, "pass", "pass", DOMAIN)]
        ).replace(b"<org_name>rep.test", b"<org_name>r\xe9p.test")
    )
    files["at_cap"].write_bytes(b"".join(_records_xml(5_000, "at-cap")))
    files["good"].write_bytes(
        aggregate_xml(DOMAIN, "good", 0, 86399, [record("192.0.2.1", 4, "pass", "pass", DOMAIN)])
    )
    return files


EXPECTED = {
    "xxe": ("invalid", "dtd"),
    "laughs": ("invalid", "dtd"),
    "gzip_1g": ("invalid", "decompression_bomb"),
    "zip_1g": ("invalid", "decompression_bomb"),
    "xml_50m": ("invalid", "too_large"),
    "xml_50m_gz": ("invalid", "decompression_bomb"),
    "million": ("invalid", "decompression_bomb"),
    "too_many": ("invalid", "too_many_records"),
    "non_utf8": ("invalid", "bad_encoding"),
}


def _high_water_marks(pid: int, marks: dict[int, tuple[bytes, int]]) -> None:
    """Record VmHWM (each process's own peak RSS) of ``pid`` and its descendants.

    Per process image: a child forked but not yet exec'ed shows its parent's mark (pages
    it shares, not memory of its own), so a new command line replaces the old mark."""
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            command = Path(f"/proc/{current}/cmdline").read_bytes()
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                    seen, before = marks.get(current, (command, 0))
                    marks[current] = (command, hwm if seen != command else max(before, hwm))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue


@pytest.mark.skipif(shutil.which(TIME) is None, reason="GNU time (Debian package time) missing")
def test_hostile_batch_is_refused_item_by_item_with_bounded_memory(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "c.yml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\ndmarc:\n  domains: [{DOMAIN}]\n")
    peak = tmp_path / "peak"
    out_file = tmp_path / "out.json"
    marks: dict[int, tuple[bytes, int]] = {}
    with out_file.open("w") as out:
        process = subprocess.Popen(
            [
                TIME,
                "-o",
                str(peak),
                "-f",
                "%M",
                sys.executable,
                "-m",
                "monitor",
                "dmarc",
                "import",
                "-c",
                str(config),
                "--format",
                "json",
                *map(str, hostile.values()),
            ],
            stdout=out,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 600
        while process.poll() is None:
            assert time.monotonic() < deadline, "import did not finish in 10 minutes"
            _high_water_marks(process.pid, marks)
            time.sleep(0.01)
    assert process.returncode == 1  # some items were invalid, none stopped the batch
    out = json.loads(out_file.read_text())
    refused = {Path(r["origin"]).name: (r["outcome"], r["reason"]) for r in out["refused"]}
    by_name = {key: path.name for key, path in hostile.items()}
    for key, expected in EXPECTED.items():
        assert refused.get(by_name[key]) == expected, (key, refused.get(by_name[key]))
    assert by_name["at_cap"] not in refused and by_name["good"] not in refused
    assert out["outcomes"] == {"invalid": len(EXPECTED), "new": 2}
    largest_kb = int(peak.read_text().split()[-1])
    # An upper bound of the tree's peak: every process at its own peak at the same time
    # (GNU time itself is a few hundred KB of it).
    tree_kb = sum(hwm for _command, hwm in marks.values())
    print(f"peak RSS: largest process {largest_kb} KB, tree at most {tree_kb} KB")
    assert largest_kb < RSS_LIMIT_KB, f"peak RSS {largest_kb} KB"
    assert tree_kb < RSS_LIMIT_KB, f"process tree peak up to {tree_kb} KB"
