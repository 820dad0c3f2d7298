"""The ``web`` section: TLS and basic auth in the Prometheus exporter-toolkit format."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from monitor.config.base import ConfigPath, Strict


class TlsServerConfig(Strict):
    cert_file: ConfigPath
    key_file: ConfigPath
    client_ca_file: ConfigPath | None = None
    client_auth_type: Literal[
        "NoClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] = "NoClientCert"
    min_version: Literal["TLS12", "TLS13"] = "TLS12"

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} does not exist or is not a file")
        return value


class WebConfig(Strict):
    """Same keys as exporter-toolkit's web-config.yml, so one file format serves all exporters."""

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_only(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"user {user!r}: password must be a bcrypt hash ($2b$...)")
        return users
