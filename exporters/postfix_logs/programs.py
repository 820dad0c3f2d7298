"""Syslog program names: ``<syslog_name>/<...>/<daemon>`` -> service, daemon, parser.

``postfix/submission/smtpd``, ``postfix/10025/smtpd``, ``postfix-out/smtp`` and
``IP_ADDRESS/smtpd`` are all Postfix daemons: the last component is the daemon, the
rest is the ``syslog_name`` (set per instance or per master.cf service). The service
label comes from that path through the configured map, so it stays a bounded set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from exporters.postfix_logs.labels import BoundedLabel
from exporters.postfix_logs.parsers import (
    FOREIGN_PARSERS,
    POSTFIX_RULES,
    UNKNOWN,
    Parser,
    Rules,
    parse_foreign,
)

OTHER = "other"

FOREIGN_PROGRAMS: Mapping[str, str] = {
    "rspamd": "rspamd",
    "opendkim": "opendkim",
    "opendmarc": "opendmarc",
    "clamd": "clamav",
    "clamav-milter": "clamav",
    "freshclam": "clamav",
    "dovecot": "dovecot",
    "postsrsd": "postsrsd",
    "amavis": "amavis",
    "amavisd": "amavis",
    "spamd": "spamassassin",
    "spamc": "spamassassin",
    "policyd-spf": "policyd-spf",
    "postfix-policyd-spf-python": "policyd-spf",
    "postgrey": "postgrey",
    "saslauthd": "saslauthd",
}
"""Programs that share mail.log, by the name they log under -> ``program`` label."""

_FOREIGN_PREFIXES = ("dovecot", "clamav", "amavis", "rspamd")
"""Families that log under several names (``dovecot-lda``, ``amavis-milter``, ...)."""


@dataclass(frozen=True, slots=True, eq=False)
class Program:
    """What a program name means for the aggregator: one object per distinct meaning.

    Compared by identity, so counters can be keyed by the Program itself and labels
    resolved only at scrape time.
    """

    service: str
    """Bounded service label (``mx``, ``submission``, ..., or ``other``)."""
    daemon: str
    """Postfix daemon (``smtpd``) or, for other programs, the ``program`` label."""
    instance: str
    """First component of the syslog_name: the queue a queue ID belongs to."""
    postfix: bool
    parse: Parser
    """``parse(message)`` -> ``(Kind, match)`` or None."""
    rules: Rules | None = None
    """The parser's rule table, which the aggregator's hot loop walks itself (saving a
    call per line); None for programs parsed by a plain function."""


class ServiceMap:
    """Maps a syslog_name path to a service label, keeping the label set bounded.

    ``services`` maps a path (``postfix/submission``) or a path prefix (``postfix-mx``)
    to a label; the longest matching prefix wins. An unmapped path keeps its first
    component as label only when that component is in ``raw_allowed`` (by default
    ``postfix`` and the first components of the configured paths); anything else is
    ``other``.
    """

    def __init__(
        self, services: Mapping[str, str], raw_allowed: frozenset[str] | None = None
    ) -> None:
        self._services = {path.strip("/"): label for path, label in services.items()}
        if raw_allowed is None:
            raw_allowed = frozenset({"postfix"} | {p.split("/")[0] for p in self._services})
        self._raw_allowed = raw_allowed

    @property
    def labels(self) -> frozenset[str]:
        """Every label this map can produce."""
        return frozenset(self._services.values()) | self._raw_allowed | {OTHER}

    def service(self, syslog_name: str) -> str:
        path = syslog_name
        while path:
            label = self._services.get(path)
            if label is not None:
                return label
            path = path.rpartition("/")[0]
        first = syslog_name.split("/")[0]
        return first if first in self._raw_allowed else OTHER


_CACHE_LIMIT = 4096


class ProgramTable:
    """Resolves program names to canonical :class:`Program` objects.

    Names are cached up to a limit; past it a name is resolved on each call, but still
    to one of the canonical objects, whose number is bounded by the label sets.
    """

    def __init__(self, services: ServiceMap, instance_limit: int = 32) -> None:
        self._services = services
        self._instances = BoundedLabel(instance_limit)
        self._cache: dict[str, Program] = {}
        self._canonical: dict[tuple[str, str, str, bool], Program] = {}
        self.cached = self._cache.get
        """``cached(name)``: the Program if already resolved, else None (hot path)."""

    def lookup(self, program: str) -> Program:
        found = self._cache.get(program)
        if found is None:
            found = self._resolve(program)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[program] = found
        return found

    def _resolve(self, program: str) -> Program:
        syslog_name, slash, daemon = program.rpartition("/")
        if slash:
            rules = POSTFIX_RULES.get(daemon)
            return self._make(
                self._services.service(syslog_name),
                daemon if rules is not None else OTHER,
                self._instances(syslog_name.split("/")[0]),
                True,
                rules or UNKNOWN,
            )
        label = FOREIGN_PROGRAMS.get(program)
        if label is None:
            label = next((p for p in _FOREIGN_PREFIXES if program.startswith(p)), None)
        if label is not None:
            return self._make(OTHER, label, "", False, FOREIGN_PARSERS.get(label, parse_foreign))
        if program.startswith("postfix"):
            # "postfix[123]: ..." (or "postfix-out[123]") is the postfix command itself
            service = self._services.service(program)
            command = POSTFIX_RULES["postfix"]
            return self._make(service, "postfix", self._instances(program), True, command)
        return self._make(OTHER, OTHER, "", False, parse_foreign)

    def canonical(self, service: str, daemon: str, instance: str, postfix: bool) -> Program:
        """The Program for these labels (counts merged from another process)."""
        parse = POSTFIX_RULES.get(daemon, UNKNOWN) if postfix else parse_foreign
        return self._make(service, daemon, instance, postfix, parse)

    def _make(
        self, service: str, daemon: str, instance: str, postfix: bool, parse: Rules | Parser
    ) -> Program:
        key = (service, daemon, instance, postfix)
        found = self._canonical.get(key)
        if found is None:
            if isinstance(parse, Rules):
                found = Program(service, daemon, instance, postfix, parse.parse, parse)
            else:
                found = Program(service, daemon, instance, postfix, parse)
            self._canonical[key] = found
        return found
