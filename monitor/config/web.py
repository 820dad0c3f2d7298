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
    """exporter-toolkit's web-config.yml keys, so one file format serves all exporters, and
    mailprobe's own bounds on client connections (``max_connections`` and the timeouts)."""

    tls_server_config: TlsServerConfig | None = None
    """Serve HTTPS instead of HTTP."""
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    """User name to bcrypt hash; when set, every request needs basic auth."""
    max_connections: int = Field(default=256, ge=1)
    """Client connections open at once; a new one beyond closes the longest idle one
    (at most half the open-file limit)."""
    header_read_timeout: float = Field(default=10.0, gt=0)
    """Seconds to finish the TLS handshake and a request's headers, from connecting or from
    the request's first byte."""
    idle_timeout: float = Field(default=90.0, gt=0)
    """Seconds a keep-alive connection may wait for its next request."""

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_only(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"user {user!r}: password must be a bcrypt hash ($2b$...)")
        return users
