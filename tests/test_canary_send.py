"""The canary sender against real loopback servers that misbehave in each SMTP phase."""

from __future__ import annotations

import asyncio

from exporters.canary.send import SendResult, SmtpRoute, send_message
from tests.servers import ClosingServer, LoopbackServer, SilentServer, free_port

MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: x\r\n\r\nhi\r\n"


class ScriptedSmtp(LoopbackServer):
    """Plain ESMTP; ``replies`` overrides the answer to a command, ``hang`` (a command
    name, or ``.`` for the end of DATA) gets no answer at all."""

    def __init__(self, replies: dict[str, bytes] | None = None, hang: str | None = None) -> None:
        super().__init__()
        self.replies = replies or {}
        self.hang = hang

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ")[0].split(b":")[0].strip().upper().decode(errors="replace")
            if verb == self.hang:
                await reader.read()
                return
            if verb == "DATA":
                writer.write(self.replies.get("DATA", b"354 go ahead\r\n"))
                await writer.drain()
                while await reader.readline() not in (b".\r\n", b""):
                    pass
                if self.hang == ".":
                    await reader.read()
                    return
                writer.write(self.replies.get(".", b"250 2.0.0 Ok: queued as ABC\r\n"))
            elif verb == "EHLO":
                writer.write(self.replies.get("EHLO", b"250-scripted\r\n250 8BITMIME\r\n"))
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(self.replies.get(verb, b"250 ok\r\n"))
            await writer.drain()


async def send(port: int, username: str | None = None, password: str | None = None) -> SendResult:
    plain = SmtpRoute("127.0.0.1", port, tls="none", step_timeout=1.0, username=username,
                      password=password)  # fmt: skip
    return await send_message(plain, "a@example.test", "b@example.test", MESSAGE)


async def test_accepted_message_is_sent_with_the_queue_reply() -> None:
    with ScriptedSmtp() as server:
        result = await send(server.port)
    assert result.state == "sent" and result.queue_reply == "250 2.0.0 Ok: queued as ABC"


async def test_refused_and_silent_servers_fail_in_connect_and_timeout() -> None:
    refused = await send(free_port())
    assert (refused.state, refused.failure) == ("failed", "connect")
    with SilentServer() as silent:
        hung = await send(silent.port)
    assert (hung.state, hung.failure) == ("failed", "timeout")
    with ClosingServer() as closing:
        closed = await send(closing.port)
    assert (closed.state, closed.failure) == ("failed", "connect")


async def test_rejections_keep_their_class_code_and_words() -> None:
    with ScriptedSmtp({"RCPT": b"550 5.1.1 no such user\r\n"}) as server:
        result = await send(server.port)
    assert (result.failure, result.code) == ("rejected_5xx", 550)
    assert "550 5.1.1 no such user" in result.reason and "RCPT TO" in result.reason
    with ScriptedSmtp({"MAIL": b"451 4.3.2 try later\r\n"}) as server:
        result = await send(server.port)
    assert (result.failure, result.code) == ("rejected_4xx", 451)
    with ScriptedSmtp({".": b"554 5.7.1 spam\r\n"}) as server:
        result = await send(server.port)
    assert (result.state, result.failure, result.code) == ("failed", "rejected_5xx", 554)


async def test_refused_auth_is_an_auth_failure_with_535() -> None:
    ehlo = b"250-scripted\r\n250 AUTH PLAIN LOGIN\r\n"
    replies = {"EHLO": ehlo, "AUTH": b"535 5.7.8 Error: authentication failed\r\n"}
    with ScriptedSmtp(replies) as server:
        result = await send(server.port, username="alice", password="wrong")
    assert (result.failure, result.code) == ("auth", 535)
    assert "refused AUTH for alice: 535 5.7.8" in result.reason
    assert "wrong" not in result.reason


async def test_no_answer_after_the_data_is_send_uncertain() -> None:
    with ScriptedSmtp(hang=".") as server:
        result = await send(server.port)
    assert result.state == "uncertain" and "may have queued" in result.reason
    with ScriptedSmtp(hang="RCPT") as server:  # before DATA: the canary surely was not taken
        result = await send(server.port)
    assert (result.state, result.failure) == ("failed", "timeout")


async def test_tls_failures_are_the_tls_class() -> None:
    with ScriptedSmtp() as server:
        implicit = await send_message(
            SmtpRoute("127.0.0.1", server.port, tls="implicit", step_timeout=1.0),
            "a@example.test", "b@example.test", MESSAGE,
        )  # fmt: skip
        starttls = await send_message(
            SmtpRoute("127.0.0.1", server.port, tls="starttls", step_timeout=1.0),
            "a@example.test", "b@example.test", MESSAGE,
        )  # fmt: skip
    assert (implicit.state, implicit.failure) == ("failed", "tls"), implicit
    assert (starttls.state, starttls.failure) == ("failed", "tls"), starttls  # not offered
