"""The lab's address plan: one /24 inside 127.0.0.0/8, one address per host.

Every lab process binds only these addresses, so parallel labs (other test runs) pick
another block with ``--net`` or ``MAILPROBE_LAB_NET``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

DEFAULT_NET = "127.77.0.0/24"
NET_ENV = "MAILPROBE_LAB_NET"
# systemd-resolved owns these on many machines; 127.0.0.1 is everybody's.
_RESERVED = tuple(ipaddress.ip_address(a) for a in ("127.0.0.1", "127.0.0.53", "127.0.0.54"))
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


@dataclass(frozen=True, slots=True)
class Host:
    """One lab host: its role key, its DNS name and its address."""

    key: str
    name: str
    address: str


# (key, label, which domain: "d" = the fleet's domain, "w" = the world's, offset in the /24)
_PLAN: tuple[tuple[str, str, str, int], ...] = (
    ("ns", "ns", "d", 2),
    ("resolver", "resolver", "d", 3),
    ("mx", "mx", "d", 10),
    ("srs", "srs", "d", 11),
    ("submit", "submit", "d", 12),
    ("milter", "milter", "d", 14),
    ("mtasts", "mta-sts", "d", 15),
    ("world", "mx", "w", 20),
    ("imap", "imap", "w", 21),
    ("worldmilter", "milter", "w", 22),
    ("client", "client", "w", 30),
)


class LabNetError(ValueError):
    pass


def resolve_net(explicit: str | None) -> ipaddress.IPv4Network:
    """``--net`` wins over ``MAILPROBE_LAB_NET``, which wins over the default block."""
    text = explicit or os.environ.get(NET_ENV) or DEFAULT_NET
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise LabNetError(f"lab net {text!r}: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen != 24:
        raise LabNetError(f"lab net {text!r} must be an IPv4 /24 block")
    if not net.subnet_of(_LOOPBACK):
        raise LabNetError(f"lab net {text!r} must lie inside 127.0.0.0/8")
    for reserved in _RESERVED:
        if reserved in net:
            raise LabNetError(f"lab net {text!r} contains {reserved}, which other programs own")
    return net


def check_domain(name: str) -> str:
    """Lab domains live under the reserved ``.test`` TLD (RFC 6761) so nothing can leak."""
    name = name.strip().rstrip(".").lower()
    labels = name.split(".")
    if len(labels) < 2 or labels[-1] != "test" or not all(labels):
        raise LabNetError(f"lab domain {name!r} must be a name under .test, e.g. example.test")
    return name


def plan_hosts(net: ipaddress.IPv4Network, domain: str, world: str) -> dict[str, Host]:
    base = int(net.network_address)
    hosts: dict[str, Host] = {}
    for key, label, which, offset in _PLAN:
        zone = domain if which == "d" else world
        hosts[key] = Host(key, f"{label}.{zone}", str(ipaddress.IPv4Address(base + offset)))
    return hosts


def reverse_zone(net: ipaddress.IPv4Network) -> str:
    """``127.77.0.0/24`` -> ``0.77.127.in-addr.arpa``."""
    octets = str(net.network_address).split(".")[:3]
    return ".".join(reversed(octets)) + ".in-addr.arpa"


def reverse_name(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer
