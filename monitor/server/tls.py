"""The HTTPS server context from ``web.tls_server_config`` (exporter-toolkit semantics).

Python's ssl module cannot ask for a client certificate without verifying it, so
``RequireAnyClientCert`` is refused with a clear reason instead of silently meaning
something stricter or weaker.
"""

from __future__ import annotations

import ssl

from monitor.config.web import TlsServerConfig


class TlsSetupError(Exception):
    """The TLS settings cannot be applied; the message says which and why."""


_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY_MODES = {
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


def server_context(settings: TlsServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[settings.min_version]
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(
            f"web.tls_server_config: cannot load cert_file {settings.cert_file} "
            f"with key_file {settings.key_file}: {_why(exc)}"
        ) from None
    auth = settings.client_auth_type
    if auth == "RequireAnyClientCert":
        raise TlsSetupError(
            "web.tls_server_config.client_auth_type: RequireAnyClientCert is not supported "
            "(Python cannot request a certificate without verifying it); use "
            "RequireAndVerifyClientCert with client_ca_file"
        )
    if auth == "NoClientCert":
        if settings.client_ca_file is not None:
            raise TlsSetupError(
                "web.tls_server_config: client_ca_file is set but client_auth_type is "
                "NoClientCert; set VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )
        return context
    if settings.client_ca_file is None:
        raise TlsSetupError(f"web.tls_server_config: client_auth_type {auth} needs client_ca_file")
    try:
        context.load_verify_locations(cafile=settings.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(
            f"web.tls_server_config: cannot load client_ca_file "
            f"{settings.client_ca_file}: {_why(exc)}"
        ) from None
    context.verify_mode = _VERIFY_MODES[auth]
    return context


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return str(exc.strerror or exc)
