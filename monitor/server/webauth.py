"""HTTP basic auth against bcrypt hashes, as Prometheus exporter-toolkit does it.

bcrypt is slow on purpose (about 0.1-0.3 s per check), too slow to pay on every scrape,
so a successful verification is remembered under a SHA-256 of user, stored hash and
password; the password itself is never kept.  A changed hash (after a reload) no longer
matches its old cache entries.  An unknown user is still checked against a stand-in hash
of the same cost as the configured ones (the cost sets bcrypt's time), so the answer
takes as long as for a known one, and user names are compared in constant time.

bcrypt is also the one thing a client without a password can make serve spend CPU on,
so each client address gets one check in flight at a time (more are refused with 429),
on two threads of bcrypt's own: guesses from one address cannot queue up work ahead of
a scraper's first request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import bcrypt

CACHE_SIZE = 256
DEFAULT_COST = 12
"""bcrypt's own default cost: the stand-in's when no configured hash names one."""


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


def hash_cost(hashed: str) -> int | None:
    """The cost of a ``$2b$12$...`` hash (12), or None if it does not name one."""
    parts = hashed.split("$")
    if len(parts) < 4 or not parts[2].isdigit():
        return None
    return int(parts[2])


def stand_in_cost(hashes: Iterable[str]) -> int:
    """The cost most configured hashes use (the higher one on a tie).

    With hashes of mixed costs, timing tells users of a rarer cost apart whatever the
    stand-in's cost; the most common one hides the most names.
    """
    costs = Counter(cost for hashed in hashes if (cost := hash_cost(hashed)) is not None)
    if not costs:
        return DEFAULT_COST
    return max(costs, key=lambda cost: (costs[cost], cost))


class TooManyAttempts(Exception):
    """The client already has a password check in flight; answer 429 without checking."""


_BCRYPT = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailprobe-bcrypt")
"""bcrypt's own threads: a burst of checks cannot hold up other work of the default
executor (name resolution of the checks, for one)."""


def _make_stand_in(cost: int) -> str:
    return bcrypt.hashpw(b"", bcrypt.gensalt(rounds=cost)).decode("ascii")


class BasicAuth:
    """Verifies ``Authorization`` headers against ``users`` (name -> bcrypt hash)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._stand_in: str | None = None
        self._pending: dict[bytes, asyncio.Future[bool]] = {}
        """Checks in flight by credentials: requests with the same ones share one."""
        self._clients_checking: set[str | None] = set()

    @property
    def stand_in_hash(self) -> str | None:
        """The hash unknown users are checked against; made at their first attempt."""
        return self._stand_in

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def replace_users(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)
        if self._stand_in is not None and hash_cost(self._stand_in) != stand_in_cost(
            self._users.values()
        ):
            self._stand_in = None

    def _lookup(self, user: str) -> str | None:
        """The stored hash for ``user``, comparing every name in constant time."""
        found = None
        for name, hashed in self._users.items():
            if hmac.compare_digest(name.encode("utf-8"), user.encode("utf-8")):
                found = hashed
        return found

    async def verify(self, header: str | None, client: str | None = None) -> bool:
        """True if ``header`` names a user and their password.

        ``client`` (the peer's address) may have one bcrypt check in flight at a time;
        a second, with other credentials, raises :class:`TooManyAttempts` at once, so
        guesses from one address cannot queue up CPU work ahead of other clients.  The
        same credentials in flight are checked once for all their requests (a scraper
        sending several requests at once after a restart).
        """
        credentials = parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._lookup(user)
        key = hashlib.sha256(
            b"\0".join(s.encode("utf-8") for s in (user, hashed or "", password))
        ).digest()
        if hashed is not None and key in self._verified:
            self._verified.move_to_end(key)
            return True
        pending = self._pending.get(key)
        if pending is None:
            if client is not None and client in self._clients_checking:
                raise TooManyAttempts(client)
            pending = asyncio.ensure_future(self._check(password, hashed))
            self._pending[key] = pending
            if client is not None:
                self._clients_checking.add(client)
            pending.add_done_callback(lambda _done: self._checked(key, client))
        if not await asyncio.shield(pending):
            return False
        self._verified[key] = None
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return True

    def _checked(self, key: bytes, client: str | None) -> None:
        self._pending.pop(key, None)
        self._clients_checking.discard(client)

    async def _check(self, password: str, hashed: str | None) -> bool:
        """bcrypt on its own threads; an unknown user costs as much as a known one."""
        loop = asyncio.get_running_loop()
        if hashed is not None:
            return await loop.run_in_executor(_BCRYPT, _checkpw, password, hashed)
        stand_in = self._stand_in
        if stand_in is None:
            cost = stand_in_cost(self._users.values())
            stand_in = await loop.run_in_executor(_BCRYPT, _make_stand_in, cost)
            self._stand_in = stand_in
        await loop.run_in_executor(_BCRYPT, _checkpw, password, stand_in)
        return False
