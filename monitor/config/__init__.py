"""mailprobe's YAML config: one strict model per section, and a loader whose errors
name the key path and line instead of showing a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from monitor.config.base import ConfigPath, PositiveSeconds, Strict
from monitor.config.canary import CanarySection
from monitor.config.dmarc import DmarcSection
from monitor.config.dns import DnsSection
from monitor.config.logs import LogsSection
from monitor.config.smtp import SmtpSection
from monitor.config.web import WebConfig

# 9974: picked from the Prometheus default-port range; not verified as unallocated (docs/serve.md).
DEFAULT_PORT = 9974
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


class Defaults(Strict):
    interval: PositiveSeconds = 60.0
    """Seconds between two runs of a check under `serve`."""
    timeout: PositiveSeconds = 10.0
    """Seconds a check may run before it is cut and reported `fail`."""
    concurrency: int = Field(default=16, ge=1, le=1024)
    """Checks that may run at the same time."""


class Config(Strict):
    defaults: Defaults = Defaults()
    """Schedule and limits for checks that set none of their own."""
    listen: str = DEFAULT_LISTEN
    """`HOST:PORT` that `serve` listens on; `--listen` overrides it."""
    state_dir: ConfigPath = Path("/var/lib/mailprobe")
    """Folder of the SQLite state file (log positions, canaries, report ids)."""
    web: WebConfig = WebConfig()
    """TLS and basic auth of the HTTP endpoints (exporter-toolkit format)."""
    logs: LogsSection = LogsSection()
    """Postfix logs to follow and how to label them."""
    smtp: SmtpSection = SmtpSection()
    """SMTP endpoints to probe."""
    dns: DnsSection = DnsSection()
    """Resolvers and the mail domains whose DNS records are checked."""
    canary: CanarySection = CanarySection()
    """Canary round trips and the mailbox that receives them."""
    dmarc: DmarcSection = DmarcSection()
    """Where DMARC, failure and TLS-RPT reports are read from."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _resolvers_for_smtp(self) -> Config:
        if self.smtp.mta_sts and not self.dns.resolvers:
            raise ValueError("smtp: 'mta_sts' needs at least one entry in 'dns.resolvers'")
        return self

    @model_validator(mode="after")
    def _smtp_targets(self) -> Config:
        # A phase timeout at or above the check's deadline could never fire: the
        # deadline would cut the check first and the reason would lose its phase.
        for index, target in enumerate(self.smtp.targets):
            if not self.dns.resolvers and (target.mx_of is not None or target.dane == "required"):
                why = "mx_of" if target.mx_of is not None else "dane: required"
                raise ValueError(
                    f"smtp.targets[{index}]: '{why}' needs at least one entry in 'dns.resolvers'"
                )
            timeout = target.schedule.timeout or self.defaults.timeout
            if target.phase_timeout is not None and target.phase_timeout >= timeout:
                raise ValueError(
                    f"smtp.targets[{index}].phase_timeout: {target.phase_timeout:g} s must be "
                    f"below the check's timeout ({timeout:g} s)"
                )
        for name, module in self.smtp.modules.items():
            if module.phase_timeout is not None and module.phase_timeout >= module.timeout:
                raise ValueError(
                    f"smtp.modules.{name}.phase_timeout: {module.phase_timeout:g} s must be "
                    f"below the module's timeout ({module.timeout:g} s)"
                )
        return self


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6); raise ValueError with a reason."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"listen address {value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port_text)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, where it is and what is wrong."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path or '<top>'}{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        super().__init__(f"{source}: {len(issues)} error(s)")
        self.source = source
        self.issues = issues


def load_config(path: Path) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [ConfigIssue("", f"cannot read: {exc.strerror}")]) from None
    return parse_config(text, str(path), base_dir=path.resolve().parent)


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate YAML text; relative paths in it are taken from ``base_dir`` if given."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigIssue("", f"invalid YAML: {problem}", line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "the top level must be a mapping")])
    lines = dict(_node_lines(node, ())) if node is not None else {}
    try:
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc, message = _pin_to_key(tuple(err["loc"]), _message(err), lines)
            issues.append(ConfigIssue(format_key_path(loc), message, _nearest_line(lines, loc)))
        raise ConfigError(source, issues) from None


def format_key_path(loc: tuple[Any, ...]) -> str:
    """``('smtp', 'targets', 2, 'port')`` -> ``smtp.targets[2].port``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _pin_to_key(
    loc: tuple[Any, ...], message: str, lines: dict[tuple[Any, ...], int]
) -> tuple[tuple[Any, ...], str]:
    """A model-level check that says ``key: problem`` is reported at that key."""
    key, sep, rest = message.partition(": ")
    if sep and key.isidentifier() and (*loc, key) in lines:
        return (*loc, key), rest
    return loc, message


def _node_lines(node: yaml.Node, prefix: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], int]]:
    yield prefix, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, key_node.value)
            yield key, key_node.start_mark.line + 1
            for sub, line in _node_lines(value_node, key):
                if sub != key:
                    yield sub, line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _node_lines(item, (*prefix, index))


def _nearest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
