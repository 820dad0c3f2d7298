"""dnspython's signing module, imported without cryptography's DSA deprecation warning.

``import dns.dnssec`` loads every algorithm dnspython implements, DSA included, and
cryptography (since 46) warns four times when dnspython's DSA class body touches its DSA
key types: eight lines of stderr on every ``mailprobe`` command, ``--help`` included
(issue 9). The lab signs with ECDSA P-256 only; the warning is for dnspython, not for a
mailprobe user. The filter below covers that one warning, from that one module, during
this one import; the lab imports ``dns.dnssec`` only through here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"dns\.dnssecalgs\.dsa$")
    import dns.dnssec as dnssec

__all__ = ["dnssec"]
