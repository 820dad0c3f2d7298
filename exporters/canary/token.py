"""The canary token: ``<route>.<id>.<sent_unix_ms>.<hmac>`` and its key.

Only a token whose HMAC verifies is ours: a forged or foreign message is never counted
and never touched. The key lives in a file of its own (mode 0600), created on first
start, so a restart keeps recognising the canaries it sent before.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

HEADER = "X-Mailprobe-Canary"
MARKER = "mailprobe-canary"
"""In every canary's Subject and Message-ID, so one IMAP TEXT search finds canaries
and the DSNs that quote them."""
KEY_BYTES = 32
MAC_CHARS = 32

_TOKEN_RE = re.compile(r"([A-Za-z0-9_-]+)\.([a-z0-9]{16})\.(\d{13})\.([0-9a-f]{32})")


class CanaryKeyError(Exception):
    """The key file cannot be read or created."""


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``; a new random one (written 0600, atomically) if absent."""
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise CanaryKeyError(f"cannot read canary key {path}: {exc.strerror}") from None
    if data:
        try:
            key = bytes.fromhex(data.decode("ascii"))
        except ValueError:
            raise CanaryKeyError(f"canary key {path} is not hex") from None
        if len(key) < 16:
            raise CanaryKeyError(f"canary key {path} is shorter than 16 bytes")
        return key
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex() + "\n")
        try:
            os.link(tmp, path)  # never overwrite a key another process made meanwhile
        except FileExistsError:
            tmp.unlink()
            return load_or_create_key(path)
        tmp.unlink()
    except OSError as exc:
        raise CanaryKeyError(f"cannot create canary key {path}: {exc.strerror}") from None
    return key


@dataclass(frozen=True, slots=True)
class Token:
    route: str
    id: str
    sent_ms: int

    @property
    def sent_at(self) -> float:
        return self.sent_ms / 1000


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:MAC_CHARS]

    def new_token(self, route: str, sent_ms: int) -> tuple[Token, str]:
        token = Token(route, secrets.token_hex(8), sent_ms)
        body = f"{route}.{token.id}.{sent_ms}"
        return token, f"{body}.{self._mac(body)}"

    def verify(self, text: str) -> Token | None:
        """The token in ``text`` if its HMAC verifies, else None."""
        for match in _TOKEN_RE.finditer(text):
            route, ident, sent, mac = match.groups()
            if hmac.compare_digest(mac, self._mac(f"{route}.{ident}.{sent}")):
                return Token(route, ident, int(sent))
        return None
