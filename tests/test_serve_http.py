"""``mailprobe serve``'s HTTP face against hostile and careless clients, as a real process."""

from __future__ import annotations

import contextlib
import resource
import shutil
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.servers import LOOPBACK, ServeProcess, SilentServer, TlsFiles
from tests.test_serve import metric, scrape_until, write_config


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


# --- connections that hold on to serve -------------------------------------------------

IDLE_CLIENTS = 1100
"""More than the 1,024 open files systemd gives a service by default."""
SLOW_CLIENTS = 100
HEADER_TIMEOUT = 3.0


def open_idle(port: int, count: int) -> list[socket.socket]:
    """Up to ``count`` connections to serve that send nothing (a connect that serve's
    full accept queue leaves waiting over half a second is given up)."""
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection((LOOPBACK, port), timeout=0.5)
        except OSError:
            continue
        sock.setblocking(False)
        socks.append(sock)
    return socks


def closed_by_peer(sock: socket.socket) -> bool:
    """True once serve closed ``sock`` (EOF or reset); False while it is still open."""
    try:
        data = sock.recv(65536)
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except (ConnectionResetError, ConnectionAbortedError):
        return True
    except OSError:  # never connected: the connect itself was refused or dropped
        return True
    return data == b"" or closed_by_peer(sock)


def raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files for its clients, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_idle_and_slow_clients_do_not_take_metrics_down(tmp_path: Path) -> None:
    raise_own_file_limit(IDLE_CLIENTS + SLOW_CLIENTS + 200)
    config = write_config(
        tmp_path / "mailprobe.yml",
        {"web": {"header_read_timeout": HEADER_TIMEOUT, "idle_timeout": HEADER_TIMEOUT}},
    )
    # systemd's default: 1,024 open files, soft and hard.
    with ServeProcess(config, wrapper=("prlimit", "--nofile=1024", "--")) as serve:
        serve.wait_listening()
        idle = open_idle(serve.port, IDLE_CLIENTS)
        slow = open_idle(serve.port, SLOW_CLIENTS)
        assert len(idle) > 1024, f"only {len(idle)} of {IDLE_CLIENTS} idle clients connected"
        try:
            # Scrapes are answered while the idle clients hold on.
            for _ in range(5):
                answer = httpx.get(f"http://{serve.listen}/metrics", timeout=5)
                assert answer.status_code == 200
                time.sleep(0.2)
            # Slowloris: a request header at a few bytes a second is cut at the timeout.
            header = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
            deadline = time.monotonic() + HEADER_TIMEOUT + 10
            open_slow = set(slow)
            sent = 0
            while open_slow and time.monotonic() < deadline:
                for sock in list(open_slow):
                    with contextlib.suppress(OSError):
                        sock.send(header[sent : sent + 1])
                    if closed_by_peer(sock):
                        open_slow.discard(sock)
                sent = min(sent + 1, len(header) - 1)
                time.sleep(0.25)
            assert not open_slow, f"{len(open_slow)} slow clients still connected"
            # The idle clients were all closed too, by the timeout or to make room.
            deadline = time.monotonic() + 10
            still_open = [s for s in idle if not closed_by_peer(s)]
            while still_open and time.monotonic() < deadline:
                time.sleep(0.2)
                still_open = [s for s in still_open if not closed_by_peer(s)]
            assert not still_open, f"{len(still_open)} idle clients still connected"
            answer = httpx.get(f"http://{serve.listen}/metrics", timeout=5)
            assert answer.status_code == 200
            dropped = {
                reason: metric(
                    answer.text, "mailprobe_http_connections_dropped_total", reason=reason
                )
                for reason in ("header_timeout", "evicted", "refused")
            }
            assert (dropped["header_timeout"] or 0) + (dropped["evicted"] or 0) >= len(idle) + len(
                slow
            ), dropped
            assert dropped["refused"] == 0
            assert metric(answer.text, "mailprobe_http_connections_max") == 256
        finally:
            for sock in idle + slow:
                sock.close()
        log = serve.log()
        assert "out of system resource" not in log
        assert len(log.splitlines()) < 50, log[-3000:]


def test_repeated_errors_from_bad_requests_are_not_logged_each_time(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mailprobe.yml", {})
    with ServeProcess(config) as serve:
        serve.wait_listening()
        for number in range(200):
            # Each request differs, as a fuzzer's or a scanner's do.
            bad = b"GET / HTTP/1.1\r\nHost: x\r\nBad Header %d\r\n\r\n" % number
            answer = raw_exchange(serve, bad)
            assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 "))
        assert httpx.get(f"http://{serve.listen}/-/healthy", timeout=5).status_code == 200
        log = serve.log()
        lines = [line for line in log.splitlines() if "malformed HTTP request" in line]
        assert 0 < len(lines) <= 5, log[-3000:]
        assert "level=info" in lines[0] and "error=BadHttpMessage" in lines[0], lines[0]
        assert "client=127.0.0.1" in lines[0], lines[0]
        assert "Traceback" not in log and "Bad Header" not in log


def wait_closed(sock: socket.socket, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if closed_by_peer(sock):
            return True
        time.sleep(0.05)
    return False


def test_keep_alive_connections_are_closed_when_idle_or_slow(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "mailprobe.yml", {"web": {"header_read_timeout": 1, "idle_timeout": 2}}
    )
    request = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
    with ServeProcess(config) as serve:
        serve.wait_listening()
        idle = socket.create_connection((LOOPBACK, serve.port), timeout=5)
        slow = socket.create_connection((LOOPBACK, serve.port), timeout=5)
        for sock in (idle, slow):
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            sock.setblocking(False)
        # The connection is kept for a next request: past the header timeout, it is
        # still open, and the next request is answered on it.
        time.sleep(1.3)
        assert not closed_by_peer(idle)
        idle.setblocking(True)
        idle.sendall(request)
        assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
        idle.setblocking(False)
        # A next request whose headers never end is cut at the header timeout.
        slow.send(b"GET /-/healthy HTTP/1.1\r\n")
        assert wait_closed(slow, 5)
        assert wait_closed(idle, 5)
        text = httpx.get(f"http://{serve.listen}/metrics", timeout=5).text
        name = "mailprobe_http_connections_dropped_total"
        assert metric(text, name, reason="idle_timeout") == 1
        assert metric(text, name, reason="header_timeout") == 1
        idle.close()
        slow.close()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_the_connection_cap_is_lowered_to_fit_the_open_file_limit(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mailprobe.yml", {"web": {"max_connections": 1000}})
    with ServeProcess(config, wrapper=("prlimit", "--nofile=256:256", "--")) as serve:
        serve.wait_listening()
        text = httpx.get(f"http://{serve.listen}/metrics", timeout=5).text
        assert metric(text, "mailprobe_http_connections_max") == 128
        assert "web.max_connections lowered to fit the open-file limit" in serve.log()


def test_a_password_guessing_flood_does_not_keep_the_scraper_out(tmp_path: Path) -> None:
    # bcrypt at cost 12 takes a quarter of a second of CPU: unbounded, 64 guesses in
    # flight kept a first scrape with the right password waiting for seconds.
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12)).decode()
    config = write_config(
        tmp_path / "mailprobe.yml", {"web": {"basic_auth_users": {"prom": hashed}}}
    )
    with ServeProcess(config) as serve:
        serve.wait_listening()
        url = f"http://{serve.listen}/metrics"
        answers: list[int] = []

        def guess(number: int) -> None:
            user = "prom" if number % 2 else f"user{number}"
            guesser = httpx.HTTPTransport(local_address="127.0.0.2")  # not the scraper's
            with httpx.Client(transport=guesser, timeout=60) as client:
                answers.append(client.get(url, auth=(user, f"guess{number}")).status_code)

        flood = [threading.Thread(target=guess, args=(n,)) for n in range(64)]
        for thread in flood:
            thread.start()
        time.sleep(0.3)
        # The scraper, from its own address, with the right password, not yet cached.
        assert httpx.get(url, auth=("prom", "right"), timeout=5).status_code == 200
        for thread in flood:
            thread.join(timeout=60)
        assert len(answers) == 64
        assert set(answers) <= {401, 429} and 429 in answers, answers


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_out_of_descriptors_an_idle_connection_makes_room(tmp_path: Path) -> None:
    # 40 followed log files leave a 64-file process fewer descriptors than its connection
    # cap (half the limit): accept() itself fails, and serve must neither spin nor stop.
    sources = []
    for number in range(40):
        path = tmp_path / f"mail{number}.log"
        path.write_text("", encoding="utf-8")
        sources.append({"path": str(path), "poll_interval": 0.5})
    config = write_config(
        tmp_path / "mailprobe.yml",
        {"state_dir": str(tmp_path / "state"), "logs": {"sources": sources}},
    )
    with ServeProcess(config, wrapper=("prlimit", "--nofile=64", "--")) as serve:
        serve.wait_listening()
        scrape_until(serve, lambda t: "postfix_log_source_up" in t, 10, "the follower")
        idle = open_idle(serve.port, 60)
        try:
            for _ in range(3):
                assert httpx.get(f"http://{serve.listen}/metrics", timeout=5).status_code == 200
            text = httpx.get(f"http://{serve.listen}/metrics", timeout=5).text
        finally:
            for sock in idle:
                sock.close()
        evicted = metric(text, "mailprobe_http_connections_dropped_total", reason="evicted")
        assert evicted is not None and 0 < evicted <= len(idle) + 4
        log = serve.log()
        assert 0 < log.count('msg="cannot accept a connection"') <= 5, log[-3000:]
        assert "Traceback" not in log


def test_a_client_that_does_not_read_does_not_hold_up_the_shutdown(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mailprobe.yml", {})
    with ServeProcess(config) as serve:
        serve.wait_listening()
        stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect((LOOPBACK, serve.port))
        # Far more answer than the socket buffers hold, and nothing read.
        stuck.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
        idle = open_idle(serve.port, 50)
        time.sleep(1)
        serve.signal(signal.SIGTERM)
        try:
            assert serve.wait(timeout=15) == 0
        finally:
            stuck.close()
            for sock in idle:
                sock.close()
        assert "msg=stopped" in serve.log()


def test_tls_handshakes_are_bounded_by_the_header_timeout(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path / "web-tls", LOOPBACK)
    config = write_config(
        tmp_path / "mailprobe.yml",
        {
            "web": {
                "header_read_timeout": 1,
                "tls_server_config": {
                    "cert_file": str(tls.cert_file),
                    "key_file": str(tls.key_file),
                },
            }
        },
    )
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    with ServeProcess(config) as serve:
        serve.wait_listening()
        silent = socket.create_connection((LOOPBACK, serve.port), timeout=5)
        half_hello = socket.create_connection((LOOPBACK, serve.port), timeout=5)
        half_hello.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        shaken = context.wrap_socket(
            socket.create_connection((LOOPBACK, serve.port), timeout=5), server_hostname=LOOPBACK
        )
        for sock in (silent, half_hello, shaken):
            sock.setblocking(False)
        assert all(wait_closed(sock, 5) for sock in (silent, half_hello, shaken))
        with httpx.Client(verify=context, timeout=5) as client:
            text = client.get(f"https://{serve.listen}/metrics").text
        assert (
            metric(text, "mailprobe_http_connections_dropped_total", reason="header_timeout") == 3
        )
        for sock in (silent, half_hello, shaken):
            sock.close()


def test_when_every_connection_is_busy_a_new_one_is_refused(tmp_path: Path) -> None:
    with SilentServer() as hang:
        config = write_config(
            tmp_path / "mailprobe.yml",
            {
                "web": {"max_connections": 2},
                "smtp": {"modules": {"plain": {"tls": "none", "timeout": 4}}},
            },
        )
        with ServeProcess(config) as serve:
            serve.wait_listening()
            probe = f"http://{serve.listen}/probe?target={LOOPBACK}:{hang.port}&module=plain"
            answers: list[int] = []

            def slow_probe() -> None:
                answers.append(httpx.get(probe, timeout=30).status_code)

            probes = [threading.Thread(target=slow_probe) for _ in range(2)]
            for thread in probes:
                thread.start()
            assert wait_until(lambda: hang.connections == 2, 10), "the probes did not start"
            # Both connections have a request in progress: none can make room.
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://{serve.listen}/-/healthy", timeout=5)
            for thread in probes:
                thread.join(timeout=30)
            assert answers == [200, 200]
            text = httpx.get(f"http://{serve.listen}/metrics", timeout=5).text
            assert metric(text, "mailprobe_http_connections_dropped_total", reason="refused") == 1
            assert metric(text, "mailprobe_http_connections_dropped_total", reason="evicted") == 0


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
