"""The SSRF guard: which addresses a webhook may reach, and the URL pinned to the checked one."""

from __future__ import annotations

import ipaddress

import pytest

from notification_service.webhooks.url_guard import AddressPolicy, UnsafeWebhookUrl, resolve


async def test_the_address_policy_allows_listed_networks_and_public_addresses() -> None:
    strict = AddressPolicy(allow_private=False)
    assert strict.permits(ipaddress.ip_address("93.184.216.34"))
    assert not strict.permits(ipaddress.ip_address("127.0.0.1"))
    assert not strict.permits(ipaddress.ip_address("100.64.0.1"))  # carrier-grade NAT
    listed = AddressPolicy(False, (ipaddress.ip_network("127.0.0.1/32"),))
    assert listed.permits(ipaddress.ip_address("127.0.0.1"))
    assert not listed.permits(ipaddress.ip_address("127.0.0.2"))
    lax = AddressPolicy(allow_private=True)
    assert lax.permits(ipaddress.ip_address("10.0.0.1"))
    assert not lax.permits(ipaddress.ip_address("0.0.0.0"))  # noqa: S104 - an address, not a bind
    resolved = await resolve("http://127.0.0.1:8080/x?y=1", listed)
    assert resolved.pinned_url == "http://127.0.0.1:8080/x?y=1"
    with pytest.raises(UnsafeWebhookUrl):
        await resolve("http://127.0.0.2:8080/x", listed)
