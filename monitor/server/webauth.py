"""HTTP basic auth against bcrypt hashes, as Prometheus exporter-toolkit does it.

bcrypt is slow on purpose (about 0.1-0.3 s per check), too slow to pay on every scrape,
so a successful verification is remembered under a SHA-256 of user, stored hash and
password; the password itself is never kept.  A changed hash (after a reload) no longer
matches its old cache entries.  An unknown user is still checked against a dummy hash so
the answer takes as long as for a known one, and user names are compared in constant
time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

CACHE_SIZE = 256


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``Basic dXNlcjpwdw==`` -> ``("user", "pw")``; None for anything else."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _checkpw(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
    except ValueError:  # a password over bcrypt's 72 bytes, or a malformed hash
        return False


class BasicAuth:
    """Verifies ``Authorization`` headers against ``users`` (name -> bcrypt hash)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._dummy_hash: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def replace_users(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)

    def _lookup(self, user: str) -> str | None:
        """The stored hash for ``user``, comparing every name in constant time."""
        found = None
        for name, hashed in self._users.items():
            if hmac.compare_digest(name.encode("utf-8"), user.encode("utf-8")):
                found = hashed
        return found

    async def verify(self, header: str | None) -> bool:
        credentials = parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._lookup(user)
        if hashed is None:
            if self._dummy_hash is None:
                self._dummy_hash = bcrypt.hashpw(b"", bcrypt.gensalt()).decode("ascii")
            await asyncio.to_thread(_checkpw, password, self._dummy_hash)
            return False
        key = hashlib.sha256(
            b"\0".join(s.encode("utf-8") for s in (user, hashed, password))
        ).digest()
        if key in self._verified:
            self._verified.move_to_end(key)
            return True
        if not await asyncio.to_thread(_checkpw, password, hashed):
            return False
        self._verified[key] = None
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return True
