"""Which private key opendkim signs with for a domain and selector.

Pointing the DKIM check at the signer's configuration instead of at one key file
catches a signer that was switched to another key (a new ``KeyFile`` or ``KeyTable``
entry) without the DNS record following.  Understood: ``KeyFile`` with ``Domain`` and
``Selector`` (single-key mode) and ``KeyTable`` files (``file:``/``refile:`` prefixes
or a bare path; entries ``keyname domain:selector:keypath``), per opendkim.conf(5).
"""

from __future__ import annotations

from pathlib import Path


class SignerConfigError(ValueError):
    pass


def _directives(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, value = line.partition(" ")
        out[key.strip().lower()] = value.strip()
    return out


def signing_key_path(conf: Path, domain: str, selector: str) -> Path:
    """The key file opendkim uses for ``domain``/``selector`` according to ``conf``."""
    try:
        directives = _directives(conf.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SignerConfigError(f"cannot read {conf}: {exc.strerror}") from None
    table = directives.get("keytable")
    if table:
        path = Path(table.split(":", 1)[1] if ":" in table else table)
        return _from_key_table(path, domain, selector)
    key_file = directives.get("keyfile")
    if key_file is None:
        raise SignerConfigError(f"{conf} names no KeyFile or KeyTable")
    conf_selector = directives.get("selector")
    if conf_selector is not None and conf_selector != selector:
        raise SignerConfigError(f"{conf} signs with selector {conf_selector}, not {selector}")
    return Path(key_file)


def _from_key_table(table: Path, domain: str, selector: str) -> Path:
    try:
        lines = table.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SignerConfigError(f"cannot read KeyTable {table}: {exc.strerror}") from None
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        _, _, value = line.partition(" ")
        parts = value.strip().split(":", 2)
        if len(parts) == 3 and parts[0].lower() == domain.lower() and parts[1] == selector:
            return Path(parts[2])
    raise SignerConfigError(f"KeyTable {table} has no key for {selector}._domainkey.{domain}")
