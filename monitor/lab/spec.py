"""What one lab is: its folder, its address block and its two domains."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from monitor.lab.layout import Layout
from monitor.lab.net import Host, plan_hosts, reverse_zone

DEFAULT_DOMAIN = "example.test"
DEFAULT_WORLD = "world.test"


@dataclass(frozen=True)
class LabSpec:
    root: Path
    net: ipaddress.IPv4Network
    domain: str = DEFAULT_DOMAIN
    world: str = DEFAULT_WORLD
    layout: Layout = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", Layout(self.root))

    @cached_property
    def hosts(self) -> dict[str, Host]:
        return plan_hosts(self.net, self.domain, self.world)

    @property
    def reverse(self) -> str:
        return reverse_zone(self.net)

    def addresses(self) -> list[str]:
        return [h.address for h in self.hosts.values()]

    def user_address(self, user: str) -> str:
        """alice and dmarc belong to the fleet's domain, the canary mailbox to the world."""
        return f"{user}@{self.world if user == 'canary' else self.domain}"
