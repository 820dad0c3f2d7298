"""parsedmarc is used offline: parsing every sample opens no socket and resolves no name.

A child process parses the samples under an audit hook (PEP 578) that records every
socket and DNS call; nothing is patched, so a lookup parsedmarc would make shows up.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from exporters.dmarc.limits import Limits
    from exporters.dmarc.pool import analyse
    import exporters.dmarc.parse  # import first: loading modules is not what is watched

    events = []
    WATCHED = ("socket.", "urllib.Request", "http.client.connect")

    def hook(event, args):
        if event.startswith(WATCHED):
            events.append(event)

    sys.addaudithook(hook)
    parsed = 0
    for path in sorted(Path(sys.argv[1]).rglob("*")):
        if path.is_file() and path.name not in ("SOURCES.txt", "LICENSE"):
            result = analyse(path.read_bytes(), path.suffix == ".eml", Limits())
            parsed += result.report is not None
    print(parsed, len(events), sorted(set(events)))
    """
)


def test_parsing_every_sample_makes_no_network_call(shared_data: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(shared_data / "dmarc")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 0, run.stderr
    parsed, events, names = run.stdout.split(maxsplit=2)
    assert int(parsed) >= 40
    assert int(events) == 0, names
