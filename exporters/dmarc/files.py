"""Report files on disk as items: xml, xml.gz, zip, json (TLS-RPT), eml and mbox, and
folders of them. A file above the message cap is refused by its size, unread."""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterator
from pathlib import Path

from exporters.dmarc.errors import Reason
from exporters.dmarc.ingest import Item
from exporters.dmarc.limits import Limits

MESSAGE_SUFFIXES = (".eml",)
MBOX_SUFFIXES = (".mbox",)


def items_from_paths(paths: list[Path], limits: Limits) -> Iterator[Item]:
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _items_from_file(child, limits)
        else:
            yield from _items_from_file(path, limits)


def _items_from_file(path: Path, limits: Limits) -> Iterator[Item]:
    name = path.name.lower()
    if name.endswith(MBOX_SUFFIXES):
        yield from items_from_mbox(path, limits)
        return
    is_message = name.endswith(MESSAGE_SUFFIXES)
    try:
        size = path.stat().st_size
        if size > limits.max_message_bytes:
            yield Item(
                str(path),
                _file_identity(path),
                is_message,
                (Reason.TOO_LARGE, f"file is {size} bytes (cap {limits.max_message_bytes})"),
            )
            return
        data = path.read_bytes()
    except OSError as exc:
        yield Item(
            str(path), str(path).encode(), is_message, (Reason.NO_REPORT, exc.strerror or "")
        )
        return
    yield Item(str(path), data, is_message)


def items_from_mbox(path: Path, limits: Limits) -> Iterator[Item]:
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            origin = f"{path}#{key}"
            data = box.get_bytes(key)
            if len(data) > limits.max_message_bytes:
                yield Item(
                    origin,
                    hashlib.sha256(data).digest(),
                    True,
                    (
                        Reason.TOO_LARGE,
                        f"mail is {len(data)} bytes (cap {limits.max_message_bytes})",
                    ),
                )
                continue
            yield Item(origin, data, True)
    finally:
        box.close()


def _file_identity(path: Path) -> bytes:
    """A hash of a file too large to hold, read in chunks: identifies it for idempotency."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return b"oversize:" + digest.digest()
