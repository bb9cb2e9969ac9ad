"""The outbound-connection policy (gateway.core.outbound): IPv6 forms that carry an IPv4
address are judged as that address (issue 15, finding 1: SSRF through ::ffff:127.0.0.1)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.core.outbound import address_allowed, effective_address

DEFAULT = ["0.0.0.0/0", "::/0"]


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        pytest.param("::ffff:127.0.0.1", "127.0.0.1", id="mapped"),
        pytest.param("::ffff:169.254.169.254", "169.254.169.254", id="mapped-metadata"),
        pytest.param("::ffff:0.0.0.0", "0.0.0.0", id="mapped-unspecified"),
        pytest.param("::127.0.0.1", "127.0.0.1", id="compatible"),
        pytest.param("64:ff9b::7f00:1", "127.0.0.1", id="nat64-well-known"),
        pytest.param("64:ff9b:1::a9fe:a9fe", "169.254.169.254", id="nat64-local-use"),
        pytest.param("2002:7f00:1::1", "127.0.0.1", id="6to4"),
        pytest.param("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1", id="teredo"),
    ],
)
def test_embedded_ipv4_is_found(address: str, embedded: str) -> None:
    assert effective_address(ipaddress.ip_address(address)) == ipaddress.ip_address(embedded)


@pytest.mark.parametrize("address", ["::1", "::", "2001:db8::1", "10.0.0.1", "fe80::1"])
def test_plain_addresses_are_themselves(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert effective_address(ip) == ip


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "127.0.0.1",
        "::1",
        "169.254.169.254",
        "fe80::1",
        "224.0.0.1",
    ],
)
def test_fail_special_addresses_need_an_explicit_network(address: str) -> None:
    assert address_allowed(address, DEFAULT) is False


@pytest.mark.parametrize(
    ("address", "networks", "allowed"),
    [
        pytest.param("::ffff:127.0.0.1", ["127.0.0.0/8", "::/0"], True, id="ok/loopback-named"),
        pytest.param("::ffff:127.0.0.1", ["127.0.0.0/8"], False, id="fail/v6-form-not-allowed"),
        pytest.param("::ffff:10.1.2.3", DEFAULT, True, id="ok/private-by-default-route"),
        pytest.param("::ffff:10.1.2.3", ["::/0", "192.0.2.0/24"], False, id="fail/v4-outside"),
        pytest.param("2001:db8::1", DEFAULT, True, id="ok/plain-v6"),
    ],
)
def test_address_allowed_judges_both_forms(
    address: str, networks: list[str], allowed: bool
) -> None:
    assert address_allowed(address, networks) is allowed
