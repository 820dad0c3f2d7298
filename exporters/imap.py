"""A small IMAP client interface over aioimaplib, shared by the canary watcher and DMARC.

aioimaplib speaks the protocol; this module keeps its loose edges away from callers
(research/e2e-dmarc.md §0: its FETCH parsing "a very leaky abstraction", a FETCH that
never returns): every command runs under a hard timeout, after which the session is
closed and marked broken (a half-read response leaves the protocol state unknown, so a
caller reconnects rather than carrying on); FETCH and LIST responses are parsed here
from aioimaplib's raw lines; message bodies are fetched with a size cap and in small
batches. Errors are :class:`ImapError` with the phase they happened in and a reason in
IMAP's words, never a library's internals.

STARTTLS (port 143) is done here, since aioimaplib has no command for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import aioimaplib

TlsMode = Literal["implicit", "starttls", "none"]
T = TypeVar("T")

FETCH_BATCH = 25
"""UIDs per FETCH: aioimaplib parses a response recursively, line by line."""
IDLE_MAX_SECONDS = 25 * 60.0
"""RFC 2177: re-issue IDLE before the server's 30-minute inactivity timer."""


class ImapError(Exception):
    """An IMAP step failed. ``phase`` is one of connect, tls, login, list, create, select,
    search, fetch, idle, noop, store, move, expunge, status, logout."""

    def __init__(self, phase: str, reason: str) -> None:
        super().__init__(f"{phase}: {reason}")
        self.phase = phase
        self.reason = reason


class ImapLoginRefused(ImapError):
    """The server answered NO to LOGIN: wrong credentials or a broken password backend."""


@dataclass(frozen=True, slots=True)
class ImapEndpoint:
    host: str
    port: int = 993
    tls: TlsMode = "implicit"
    username: str = ""
    password: str = field(default="", repr=False)
    server_name: str | None = None
    """Name checked against the certificate (default: ``host``)."""
    ca_file: Path | None = None
    timeout: float = 10.0
    """Seconds for connecting and for every single command."""
    max_message_bytes: int = 2_000_000
    """FETCH returns at most this many bytes of one message."""

    @property
    def tls_name(self) -> str:
        return self.server_name or self.host

    @property
    def label(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Folder:
    name: str
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class Selected:
    name: str
    exists: int
    uidvalidity: int | None
    uidnext: int | None


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    uid: int
    raw: bytes
    size: int
    """The full size the server reports (RFC822.SIZE); ``raw`` may be shorter."""
    internaldate: datetime | None

    @property
    def truncated(self) -> bool:
        return len(self.raw) < self.size


def tls_context(endpoint: ImapEndpoint) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    """aioimaplib's client, connecting with our TLS context and certificate name."""

    def __init__(self, endpoint: ImapEndpoint, context: ssl.SSLContext | None) -> None:
        self._endpoint = endpoint
        self._context = context
        super().__init__(endpoint.host, endpoint.port, timeout=endpoint.timeout)

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        running = loop or asyncio.get_running_loop()
        self.protocol = aioimaplib.IMAP4ClientProtocol(running, conn_lost_cb)
        extra: dict[str, Any] = {}
        if self._context is not None:
            extra = {"ssl": self._context, "server_hostname": self._endpoint.tls_name}
        self._client_task = running.create_task(
            running.create_connection(lambda: self.protocol, host, port, **extra)
        )


_LIST_RE = re.compile(
    rb'^(?:LIST )?\((?P<flags>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$', re.I
)
_DELIMITER_RE = re.compile(rb'^(?:LIST )?\([^)]*\) "((?:[^"\\]|\\.))"', re.I)
_EXISTS_RE = re.compile(rb"^(\d+) EXISTS$")
_CODE_RE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID_RE = re.compile(rb"\bUID (\d+)")
_SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_DATE_RE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_STATUS_RE = re.compile(rb"\bUIDNEXT (\d+)")


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _text(value: bytes | bytearray | str) -> str:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return raw.decode("utf-8", "replace").strip()


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[FetchedMessage]:
    """Messages from a ``FETCH (UID RFC822.SIZE INTERNALDATE BODY.PEEK[]<0.n>)`` response.

    aioimaplib hands over ``bytes`` lines (untagged ``* `` stripped) and each literal as a
    ``bytearray`` right after the line announcing it; items may come in any order. The
    tagged completion (the response's last line) is not part of ``lines``.
    """
    found: list[FetchedMessage] = []
    meta: list[bytes] = []
    body: bytes | None = None
    started = False

    def finish() -> None:
        if not started:
            return
        text = b" ".join(meta)
        uid = _UID_RE.search(text)
        if uid is None:
            return  # an unsolicited FETCH (flags changed): not one of ours
        size = _SIZE_RE.search(text)
        date = _DATE_RE.search(text)
        raw = body or b""
        when = None
        if date is not None:
            with contextlib.suppress(ValueError):
                when = datetime.strptime(date.group(1).decode(), "%d-%b-%Y %H:%M:%S %z")
        found.append(
            FetchedMessage(int(uid.group(1)), raw, int(size.group(1)) if size else len(raw), when)
        )

    for line in lines:
        if isinstance(line, bytearray):
            body = bytes(line)
            continue
        if _FETCH_START.match(line):
            finish()
            meta, body, started = [line], None, True
        elif started:
            meta.append(line)
    finish()
    return found


class ImapSession:
    """One logged-in IMAP session. ``await ImapSession.open(endpoint)``, then ``close()``.

    After any :class:`ImapError` other than a ``NO`` answer the session is ``broken``:
    close it and open a new one.
    """

    def __init__(self, endpoint: ImapEndpoint, client: _Client) -> None:
        self.endpoint = endpoint
        self._client = client
        self.broken = False
        self.selected: Selected | None = None

    # -- lifecycle --------------------------------------------------------------------

    @classmethod
    async def open(cls, endpoint: ImapEndpoint) -> ImapSession:
        context = tls_context(endpoint) if endpoint.tls == "implicit" else None
        try:
            client = _Client(endpoint, context)
        except OSError as exc:
            raise ImapError(
                "connect", f"cannot connect to {endpoint.host}:{endpoint.port}: {exc}"
            ) from None
        session = cls(endpoint, client)
        try:
            await session._greeting()
            if endpoint.tls == "starttls":
                await session._starttls()
            await session._login()
        except BaseException:
            await session.close()
            raise
        return session

    async def close(self) -> None:
        """LOGOUT politely if the session is healthy, then drop the connection."""
        client = self._client
        if not self.broken and client.protocol.state in ("AUTH", "SELECTED", "NONAUTH"):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(min(self.endpoint.timeout, 2.0)):
                    await client.protocol.logout()
        self.broken = True
        transport = client.protocol.transport
        if transport is not None:
            transport.close()
        client._client_task.cancel()
        for task in list(client.tasks) + list(client.protocol.tasks):
            task.cancel()

    async def _greeting(self) -> None:
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            async with asyncio.timeout(self.endpoint.timeout):
                await self._client._client_task
        except TimeoutError:
            self.broken = True
            raise ImapError(
                "connect", f"no connection to {where} in {self.endpoint.timeout:g} s"
            ) from None
        except ssl.SSLError as exc:
            self.broken = True
            raise ImapError(
                "tls", f"TLS handshake with {where} failed: {exc.reason or exc}"
            ) from None
        except OSError as exc:
            self.broken = True
            reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
            raise ImapError("connect", f"cannot connect to {where}: {reason}") from None
        # aioimaplib answers the greeting with CAPABILITY in a task of its own, holding a
        # lock a cancelled waiter would have to take back: poll its state instead.
        protocol = self._client.protocol
        deadline = asyncio.get_running_loop().time() + self.endpoint.timeout
        while protocol.state not in ("AUTH", "NONAUTH") or protocol.tasks:
            if asyncio.get_running_loop().time() > deadline:
                self.broken = True
                if protocol.state in ("AUTH", "NONAUTH"):
                    raise ImapError("connect", f"{where} greeted but did not answer CAPABILITY")
                raise ImapError("connect", f"no IMAP greeting from {where}")
            await asyncio.sleep(0.005)
        if not protocol.capabilities:
            self.broken = True
            raise ImapError("connect", f"{where} sent no capabilities after its greeting")

    async def _starttls(self) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            self.broken = True
            raise ImapError("tls", f"{self.endpoint.host} does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._run("tls", protocol.execute(command))
        self._expect_ok("tls", response, "STARTTLS")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.endpoint.timeout):
                transport = await loop.start_tls(
                    protocol.transport,
                    protocol,
                    tls_context(self.endpoint),
                    server_hostname=self.endpoint.tls_name,
                )
        except (TimeoutError, ssl.SSLError, OSError) as exc:
            self.broken = True
            detail = getattr(exc, "reason", None) or str(exc) or "timed out"
            raise ImapError(
                "tls", f"TLS handshake with {self.endpoint.host} failed: {detail}"
            ) from None
        protocol.transport = transport
        await self._run("tls", protocol.capability())  # RFC 3501: capabilities anew after TLS

    async def _login(self) -> None:
        endpoint = self.endpoint
        response = await self._run(
            "login", self._client.protocol.login(endpoint.username, endpoint.password)
        )
        if response.result != "OK":
            text = _text(response.lines[-1]) if response.lines else response.result
            raise ImapLoginRefused(
                "login", f"{endpoint.host} refused the login of {endpoint.username}: {text}"
            )

    # -- commands ---------------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self._client.protocol.capabilities)

    async def list_folders(self) -> list[Folder]:
        protocol = self._client.protocol
        args: tuple[str, ...] = ('""', '"*"')
        if {"SPECIAL-USE", "LIST-EXTENDED"} <= protocol.capabilities:
            args = (*args, "RETURN", "(SPECIAL-USE)")  # every folder, with its use flags
        response = await self._run("list", protocol.simple_command("LIST", *args))
        self._expect_ok("list", response, "LIST")
        folders = []
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            match = _LIST_RE.match(line)
            if match:
                flags = frozenset(f.decode().lower() for f in match["flags"].split())
                folders.append(Folder(_unquote(match["name"]), flags))
        return folders

    async def delimiter(self) -> str:
        """The hierarchy delimiter of the personal namespace (``LIST "" ""``), '/' if none."""
        response = await self._run("list", self._client.protocol.simple_command("LIST", '""', '""'))
        self._expect_ok("list", response, "LIST")
        for line in response.lines:
            if isinstance(line, bytes):
                match = _DELIMITER_RE.match(line)
                if match:
                    return match.group(1).decode()
        return "/"

    async def create(self, folder: str) -> None:
        """CREATE ``folder`` unless it exists (a folder is never created twice)."""
        if folder in {f.name for f in await self.list_folders()}:
            return
        response = await self._run(
            "create", self._client.protocol.simple_command("CREATE", _quote(folder))
        )
        self._expect_ok("create", response, f"CREATE {folder}")

    async def special_use(self, use: str) -> str | None:
        """The folder flagged ``use`` (e.g. ``\\Junk``, RFC 6154), or None."""
        wanted = use.lower()
        for folder in await self.list_folders():
            if wanted in folder.flags:
                return folder.name
        return None

    async def select(self, folder: str = "INBOX") -> Selected:
        response = await self._run("select", self._client.protocol.select(_quote(folder)))
        self._expect_ok("select", response, f"SELECT {folder}")
        exists, validity, uidnext = 0, None, None
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            match = _EXISTS_RE.match(line)
            if match:
                exists = int(match.group(1))
            for code, value in _CODE_RE.findall(line):
                if code == b"UIDVALIDITY":
                    validity = int(value)
                else:
                    uidnext = int(value)
        self.selected = Selected(folder, exists, validity, uidnext)
        return self.selected

    async def uidnext(self, folder: str) -> int | None:
        response = await self._run(
            "status", self._client.protocol.simple_command("STATUS", _quote(folder), "(UIDNEXT)")
        )
        self._expect_ok("status", response, f"STATUS {folder}")
        for line in response.lines:
            if isinstance(line, bytes):
                match = _STATUS_RE.search(line)
                if match:
                    return int(match.group(1))
        return None

    async def uid_search(self, *criteria: str) -> list[int]:
        """``UID SEARCH criteria`` in the selected folder (strings are sent as given)."""
        response = await self._run(
            "search", self._client.protocol.search(*criteria, charset=None, by_uid=True)
        )
        self._expect_ok("search", response, "UID SEARCH")
        uids: list[int] = []
        for line in response.lines[:-1]:  # the last line is the tagged completion's text
            if isinstance(line, bytes):
                uids.extend(int(part) for part in line.split() if part.isdigit())
        return sorted(uids)

    async def search_header(self, name: str, value: str) -> list[int]:
        return await self.uid_search("HEADER", _quote(name), _quote(value))

    async def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """Whole messages (up to ``max_message_bytes`` each) with size and INTERNALDATE.

        ``BODY.PEEK`` leaves the ``\\Seen`` flag alone: reading never changes a mailbox.
        """
        cap = self.endpoint.max_message_bytes
        found: list[FetchedMessage] = []
        for start in range(0, len(uids), FETCH_BATCH):
            batch = ",".join(str(uid) for uid in uids[start : start + FETCH_BATCH])
            response = await self._run(
                "fetch",
                self._client.protocol.fetch(
                    batch, f"(UID RFC822.SIZE INTERNALDATE BODY.PEEK[]<0.{cap}>)", by_uid=True
                ),
            )
            self._expect_ok("fetch", response, "UID FETCH")
            found.extend(parse_fetch(response.lines[:-1]))
        return found

    async def wait_for_change(
        self, timeout: float, poll_interval: float = 5.0, wake: asyncio.Event | None = None
    ) -> bool:
        """Wait up to ``timeout`` s for news in the selected folder; True if the server
        said something (EXISTS, EXPUNGE, ...). IDLE when offered, else NOOP polling.
        ``wake``, when set, ends the wait early (the caller has work for the session)."""
        waiter = asyncio.ensure_future(wake.wait()) if wake is not None else None
        try:
            if "IDLE" not in self.capabilities:
                waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(
                    asyncio.sleep(min(timeout, poll_interval))
                )}  # fmt: skip
                if waiter is not None:
                    waits.add(waiter)
                _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for future in pending:
                    future.cancel()
                return await self.noop()
            return await self._idle(timeout, waiter)
        finally:
            if waiter is not None and not waiter.done():
                waiter.cancel()

    async def _idle(self, timeout: float, waiter: asyncio.Future[Any] | None) -> bool:
        client = self._client
        queue = client.protocol.idle_queue
        while not queue.empty():  # pushes left over from an earlier IDLE
            queue.get_nowait()
        limit = min(timeout, IDLE_MAX_SECONDS)
        idle = await self._run("idle", client.idle_start(timeout=limit))
        push = asyncio.ensure_future(client.wait_server_push(timeout=limit))
        try:
            waits: set[asyncio.Future[Any]] = {push}
            if waiter is not None:
                waits.add(waiter)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not push.done():
                push.cancel()
            if client.has_pending_idle():
                client.idle_done()
            await self._run("idle", asyncio.shield(idle))
        if push.cancelled() or push.exception() is not None:
            return False
        pushed = push.result()
        return bool(pushed) and pushed != aioimaplib.STOP_WAIT_SERVER_PUSH

    async def noop(self) -> bool:
        """NOOP; True if the server sent untagged news with it."""
        response = await self._run("noop", self._client.protocol.simple_command("NOOP"))
        self._expect_ok("noop", response, "NOOP")
        return len(response.lines) > 1

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """UID MOVE (RFC 6851), or UID COPY + delete where MOVE is missing."""
        if not uids:
            return
        uid_set = ",".join(map(str, uids))
        protocol = self._client.protocol
        if "MOVE" in protocol.capabilities:
            response = await self._run("move", protocol.move(uid_set, _quote(folder), by_uid=True))
            self._expect_ok("move", response, f"UID MOVE to {folder}")
            return
        response = await self._run("move", protocol.copy(uid_set, _quote(folder), by_uid=True))
        self._expect_ok("move", response, f"UID COPY to {folder}")
        await self.delete(uids)

    async def delete(self, uids: Sequence[int]) -> None:
        """Flag ``uids`` \\Deleted and expunge them (only them, with UIDPLUS)."""
        if not uids:
            return
        uid_set = ",".join(map(str, uids))
        protocol = self._client.protocol
        response = await self._run(
            "store", protocol.store(uid_set, "+FLAGS.SILENT", r"(\Deleted)", by_uid=True)
        )
        self._expect_ok("store", response, "UID STORE")
        if "UIDPLUS" in protocol.capabilities:
            response = await self._run("expunge", protocol.expunge(uid_set, by_uid=True))
        else:
            response = await self._run("expunge", protocol.expunge())
        self._expect_ok("expunge", response, "EXPUNGE")

    # -- plumbing ---------------------------------------------------------------------

    async def _run(self, phase: str, work: Awaitable[T], what: str | None = None) -> T:
        """``work`` under the hard timeout; a timeout or a lost connection breaks the session.

        ``work`` runs as a task of its own that is abandoned (cancelled, not awaited) on
        timeout: aioimaplib's commands may wait on a lock another stuck command holds.
        """
        if self.broken:
            raise ImapError(phase, f"session to {self.endpoint.host} is closed")
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.endpoint.timeout)
        except asyncio.CancelledError:
            task.cancel()
            self.broken = True
            raise
        if not done:
            task.cancel()
            self.broken = True
            raise ImapError(phase, what or f"no answer from {where} in {self.endpoint.timeout:g} s")
        try:
            return task.result()
        except aioimaplib.CommandTimeout:
            self.broken = True
            raise ImapError(
                phase, f"no answer from {where} in {self.endpoint.timeout:g} s"
            ) from None
        except aioimaplib.AioImapException as exc:
            self.broken = True
            raise ImapError(phase, f"{where}: {exc}") from None
        except (OSError, AttributeError) as exc:  # transport gone under aioimaplib
            self.broken = True
            raise ImapError(phase, f"connection to {where} lost") from exc

    def _expect_ok(self, phase: str, response: Any, what: str) -> None:
        if response.result == "OK":
            return
        text = _text(response.lines[-1]) if response.lines else ""
        if self._client.protocol.transport is None or self._client.protocol.transport.is_closing():
            self.broken = True
        raise ImapError(phase, f"{self.endpoint.host} answered {response.result} to {what}: {text}")
