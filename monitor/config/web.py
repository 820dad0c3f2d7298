"""The ``web`` section: TLS and basic auth in the Prometheus exporter-toolkit format."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from monitor.config.base import ConfigPath, Strict


class TlsServerConfig(Strict):
    cert_file: ConfigPath
    """PEM certificate (chain) served to scrapers."""
    key_file: ConfigPath
    """PEM private key of `cert_file`."""
    client_ca_file: ConfigPath | None = None
    """CA bundle for client certificates."""
    client_auth_type: Literal[
        "NoClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] = "NoClientCert"
    """Whether scrapers must present a certificate, as in exporter-toolkit."""
    min_version: Literal["TLS12", "TLS13"] = "TLS12"
    """Oldest TLS version accepted."""

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} does not exist or is not a file")
        return value


class WebConfig(Strict):
    """Same keys as exporter-toolkit's web-config.yml, so one file format serves all exporters."""

    tls_server_config: TlsServerConfig | None = None
    """Serve HTTPS instead of HTTP."""
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    """User name to bcrypt hash; when set, every request needs basic auth."""

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_only(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"user {user!r}: password must be a bcrypt hash ($2b$...)")
        return users
