"""The conversation of one SMTP session, kept for the debug view, bounded in size.

Credentials never enter it: a command marked secret is recorded as its verb only
(``AUTH PLAIN <hidden>``), and so is every line the client sends after it until the
server's final reply to the AUTH exchange.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MAX_ENTRIES = 200
MAX_LINE = 200


@dataclass
class Transcript:
    started: float = field(default_factory=time.monotonic)
    entries: list[str] = field(default_factory=list)
    dropped: int = 0

    def _add(self, who: str, text: str) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            self.dropped += 1
            return
        head = text[:MAX_LINE]
        shown = head if head.isprintable() else "".join(c if c.isprintable() else "." for c in head)
        if len(text) > MAX_LINE:
            shown += f"… ({len(text)} characters)"
        self.entries.append(f"{time.monotonic() - self.started:7.3f} {who} {shown}")

    def client(self, line: str, *, secret: bool = False) -> None:
        if secret:
            verb = " ".join(line.split()[:2]) if line.upper().startswith("AUTH") else ""
            line = f"{verb} <hidden>".strip()
        self._add("C:", line)

    def server(self, line: str) -> None:
        self._add("S:", line)

    def note(self, text: str) -> None:
        self._add("--", text)

    def render(self) -> str:
        lines = list(self.entries)
        if self.dropped:
            lines.append(f"({self.dropped} more lines not kept)")
        return "\n".join(lines)
