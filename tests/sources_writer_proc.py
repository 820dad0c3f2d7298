"""A log writer for the follower tests: numbered lines at a steady rate, with rotations.

Run as ``python -m tests.sources_writer_proc PATH --lines N --rotate-every K --mode M``.
Each line is one ``write`` on an O_APPEND descriptor, as syslog daemons write. The
writer rotates the file itself, so no line is lost on disk (a separate logrotate doing
copytruncate loses what is written between its copy and its truncate; the follower
cannot recover those, and the test must not blame it for them):

* ``rename``: shift ``PATH.1`` .. ``PATH.<keep-1>`` up by one, rename ``PATH`` to
  ``PATH.1``, close, create a new ``PATH``;
* ``copytruncate``: shift the same way, copy ``PATH`` to ``PATH.1``, truncate ``PATH``
  and keep writing to the same descriptor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time


def shift(path: str, keep: int) -> None:
    for i in range(keep - 1, 0, -1):
        if os.path.exists(f"{path}.{i}"):
            os.replace(f"{path}.{i}", f"{path}.{i + 1}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--rotate-every", type=int, default=0)
    parser.add_argument("--mode", choices=["rename", "copytruncate"], default="rename")
    parser.add_argument("--keep", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10000.0, help="lines per second")
    args = parser.parse_args()

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    fd = os.open(args.path, flags, 0o644)
    started = time.monotonic()
    for n in range(args.first, args.first + args.lines):
        os.write(fd, b"2026-01-01T00:00:00.000000+00:00 mx postfix/smtpd[1]: seq=%09d\n" % n)
        done = n - args.first + 1
        if args.rotate_every and done % args.rotate_every == 0 and done < args.lines:
            shift(args.path, args.keep)
            if args.mode == "rename":
                os.rename(args.path, f"{args.path}.1")
                os.close(fd)
                fd = os.open(args.path, flags, 0o644)
            else:
                shutil.copyfile(args.path, f"{args.path}.1")
                os.ftruncate(fd, 0)
        ahead = done / args.rate - (time.monotonic() - started)
        if ahead > 0.001:
            time.sleep(ahead)
    os.close(fd)


if __name__ == "__main__":
    main()
