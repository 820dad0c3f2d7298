"""``mailprobe serve``'s HTTP face against hostile and careless clients, as a real process."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.servers import LOOPBACK, ServeProcess
from tests.test_serve import write_config


def raw_exchange(serve: ServeProcess, request: bytes) -> bytes:
    """Send ``request`` as it is and read what serve answers until it closes (or 5 s)."""
    with socket.create_connection((LOOPBACK, serve.port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_the_server_header_names_mailprobe_and_no_versions(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mailprobe.yml", {})
    with ServeProcess(config) as serve:
        serve.wait_listening()
        base = f"http://{serve.listen}"
        for path, status in (("/metrics", 200), ("/-/healthy", 200), ("/nothing", 404)):
            answer = httpx.get(base + path, timeout=5)
            assert answer.status_code == status, path
            assert answer.headers["server"] == "mailprobe", path
        refused = httpx.post(f"{base}/metrics", timeout=5)
        assert refused.status_code == 405
        assert refused.headers["server"] == "mailprobe"
        # Answered by the HTTP parser itself, before any handler runs.
        for garbage in (
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            b"\x16\x03\x01junk\r\n\r\n",
        ):
            answer = raw_exchange(serve, garbage)
            assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:200]
            assert b"\r\nServer: mailprobe\r\n" in answer, answer[:400]
            assert b"Python" not in answer and b"aiohttp" not in answer.lower()
