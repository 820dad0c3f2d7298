"""The lab's MTA-STS policy server: HTTPS on the mta-sts host, serving one file.

Run as ``python -m monitor.lab.mtasts --listen ADDR --cert CHAIN --key KEY --policy FILE
--pid-file FILE --log FILE``; it detaches itself (double fork) and writes its PID file
once it is listening, like the other lab daemons.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

POLICY_PATH = "/.well-known/mta-sts.txt"


def _handler(policy: Path, log: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mailprobe-lab-mta-sts"

        def do_GET(self) -> None:
            if self.path != POLICY_PATH:
                self.send_error(404)
                return
            body = policy.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            with log.open("a", encoding="utf-8") as out:
                out.write(f"{self.client_address[0]} {format % args}\n")

    return Handler


def _daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monitor.lab.mtasts")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--pid-file", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = ThreadingHTTPServer((args.listen, args.port), _handler(args.policy, args.log))
    # The handshake happens in the handler thread, so a silent client blocks nobody.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    server.daemon_threads = True
    _daemonize()
    tmp = args.pid_file.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(args.pid_file)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
