"""The SSRF guard: a webhook may only call public addresses unless the operator allows more.

A URL is checked when the webhook is saved and again before every attempt, and the
attempt connects to the very address that was checked (the host name goes in the ``Host``
header and TLS SNI), so a DNS answer that changes between check and connect (rebinding)
cannot redirect a delivery to an internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from notification_service.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeWebhookUrl(ValueError):
    """The URL is malformed, does not resolve, or resolves to a refused address."""


@dataclass(frozen=True)
class ResolvedUrl:
    """A checked URL and the address a delivery must connect to."""

    url: str
    host: str
    address: IPAddress
    pinned_url: str  # the URL with the host replaced by the checked address


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool
    allowed_networks: tuple[IPNetwork, ...] = ()

    def permits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allowed_networks):
            return True
        if address.is_global and not address.is_multicast:
            return True
        return self.allow_private and not (address.is_multicast or address.is_unspecified)


def parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL without credentials; UnsafeWebhookUrl else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("The URL must start with http:// or https://.")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("The URL must not carry credentials.")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookUrl("The URL has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookUrl("The URL has an invalid port.") from exc
    return parts.scheme, host, port


async def resolve(url: str, policy: AddressPolicy) -> ResolvedUrl:
    """Resolve the URL's host and check every address it resolves to against the policy."""
    _scheme, host, port = parse(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeWebhookUrl(f"The host {host!r} does not resolve.") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise UnsafeWebhookUrl(f"The host {host!r} does not resolve.")
    refused = [a for a in addresses if not policy.permits(a)]
    if refused:
        # Every address must pass: a host with one internal address is refused outright.
        raise UnsafeWebhookUrl(
            f"The host {host!r} resolves to a non-public address ({refused[0]}); "
            "webhooks may only call public addresses."
        )
    address = addresses[0]
    parts = urlsplit(url)
    netloc_host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{netloc_host}:{parts.port}" if parts.port else netloc_host
    return ResolvedUrl(
        url=url, host=host, address=address, pinned_url=parts._replace(netloc=netloc).geturl()
    )
