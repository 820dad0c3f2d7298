"""What lets a lab Postfix instance start (and reload) at once.

Two things made ``postfix start`` slow in the lab, seconds on 2 cores and far longer on
a busy machine, without doing anything the lab needs:

- ``postfix start`` first runs ``post-install create-missing``, ``postsuper`` and a long
  list of ``find`` permission checks: about 150 short-lived processes per instance. The
  lab makes the queue directories here, as Debian's ``/etc/postfix/postfix-files`` lists
  them, and leaves Postfix's own ``quick-start`` marker, its documented fast path
  (``postfix quick-stop`` leaves it; ``postfix start`` removes it).
- Every Postfix program reads main.cf through ``dict_load_file_xt``, which re-reads the
  file every 300 ms until its mtime is at least a second in the past ("let it cool
  down", in case an editor is still writing it). The lab writes main.cf atomically
  (rename), so there is nothing to wait for: it dates the new file two seconds back.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Iterable
from pathlib import Path

# mail_owner and setgid_group in the lab's main.cf (templates/postfix-main.cf.tmpl).
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"

# (path under queue_directory, owner, group, mode), from postfix-files; its group "-"
# is root's, as post-install (running as root) leaves it.
_QUEUE_DIRS: tuple[tuple[str, str, str, int], ...] = (
    (".", "root", "root", 0o755),
    ("active", MAIL_OWNER, "root", 0o700),
    ("bounce", MAIL_OWNER, "root", 0o700),
    ("corrupt", MAIL_OWNER, "root", 0o700),
    ("defer", MAIL_OWNER, "root", 0o700),
    ("deferred", MAIL_OWNER, "root", 0o700),
    ("flush", MAIL_OWNER, "root", 0o700),
    ("hold", MAIL_OWNER, "root", 0o700),
    ("incoming", MAIL_OWNER, "root", 0o700),
    ("private", MAIL_OWNER, "root", 0o700),
    ("maildrop", MAIL_OWNER, SETGID_GROUP, 0o730),
    ("public", MAIL_OWNER, SETGID_GROUP, 0o710),
    ("pid", "root", "root", 0o755),
    ("saved", MAIL_OWNER, "root", 0o700),
    ("trace", MAIL_OWNER, "root", 0o700),
)
QUICK_START = "quick-start"
COOLED_SECONDS = 2.0
"""How far back a freshly written main.cf is dated: Postfix waits while the file's mtime
(whole seconds) is within a second of now."""


def prepare_queue(queue_dir: Path) -> None:
    """Create (or fix) every queue directory ``postfix start`` would, and leave the
    ``quick-start`` marker so that the next ``postfix start`` skips its checks."""
    for name, owner, group, mode in _QUEUE_DIRS:
        path = queue_dir / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
        path.chmod(mode)
    (queue_dir / QUICK_START).touch()


def cool_down(written: Iterable[Path]) -> None:
    """Date every main.cf among the ``written`` files ``COOLED_SECONDS`` back."""
    cooled = time.time() - COOLED_SECONDS
    for path in written:
        if path.name == "main.cf":
            os.utime(path, (cooled, cooled))
