"""The lab: a real miniature mail fleet (Postfix, Dovecot, knot, unbound, postsrsd,
opendkim, opendmarc, policyd-spf) started on loopback addresses of this machine."""

from monitor.lab.lab import Credentials, Lab, LabError, ServiceStatus, UpResult

__all__ = ["Credentials", "Lab", "LabError", "ServiceStatus", "UpResult"]
