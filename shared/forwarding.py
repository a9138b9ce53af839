"""Whose ``X-Forwarded-For`` is believed: only the proxies the operator lists in
``TRUSTED_PROXIES`` (addresses and CIDR networks), none by default.

A client that talks to a service directly can write any ``X-Forwarded-For`` it likes; if
it were believed, rotating it would give every request a fresh per-address budget (rate
limit, login throttle). So the caller's address is the peer's, unless the peer is a listed
proxy: then the header is read from the right, past the listed proxies, and the first
address no listed proxy stands for is the client. uvicorn's own proxy-headers handling is
off (``tradebot serve``): this is the one place the header is read.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """A parsed ``TRUSTED_PROXIES`` list; see :func:`trusted_proxies`."""

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        if not self.networks or not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: ``peer``, or, when the peer is a listed proxy, the
        rightmost ``X-Forwarded-For`` entry that is not one."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        entries = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
        for entry in reversed(entries):
            if not self.trusts(entry):
                return entry[:64]
        return entries[0][:64] if entries else peer


def parse_networks(value: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 172.16.0.0/12"`` as networks; a ValueError names a bad entry."""
    networks = []
    for part in value.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not an address or network") from exc
    return tuple(networks)


@lru_cache(maxsize=8)
def trusted_proxies(value: str) -> TrustedProxies:
    """The proxies of a ``TRUSTED_PROXIES`` value (parsed once per value)."""
    return TrustedProxies(parse_networks(value))
