"""The one outbound-connection policy: whether the gateway may connect to an address.

Every connection the gateway makes to an address a client or an operator chose goes
through `address_allowed`: today the ACME validators (http-01, its redirects, and
tls-alpn-01, RFC 8555 §8.3 and RFC 8737), later webhooks and sync targets.

Addresses are normalized first (`effective_address`): an IPv6 address that carries an IPv4
address is judged as that IPv4 address. Python's `ipaddress` flags (is_loopback, …) are
not set on `::ffff:127.0.0.1` (Python 3.11), yet a dual-stack socket connected to it
reaches 127.0.0.1; the same holds for the other embeddings below, through a translator
that may sit on the path. Without this, an AAAA record or an IP identifier of
`::ffff:127.0.0.1` reached loopback past a policy that refuses 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6052 §2.1 well-known NAT64 prefix and RFC 8215 local-use NAT64 prefix: the IPv4
# address is the last 32 bits.
_NAT64 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
# RFC 4291 §2.5.5.1 IPv4-compatible addresses (deprecated, still routed by some stacks).
_COMPATIBLE = ipaddress.IPv6Network("::/96")


def effective_address(ip: IPAddress) -> IPAddress:
    """The address a connection to `ip` may end up at: the IPv4 address an IPv6 address
    embeds (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo client), else `ip` itself."""
    if ip.version == 4:
        return ip
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d (RFC 4291 §2.5.5.2)
        return ip.ipv4_mapped
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48 (RFC 3056)
        return ip.sixtofour
    if ip.teredo is not None:  # 2001::/32 (RFC 4380): (server, client)
        return ip.teredo[1]
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64):
        return last32
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: or ::1, which are IPv6's own
        return last32
    return ip


def _special(ip: IPAddress) -> bool:
    return ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified


def address_allowed(address: str, networks: Sequence[str]) -> bool:
    """Whether the gateway may connect to `address` under `networks` (CIDRs, e.g. a
    profile's ACME `validation_networks`). Loopback, link-local, multicast and unspecified
    addresses need an explicit network that contains them: the default routes 0.0.0.0/0
    and ::/0 do not count. Both the address as given and the address it embeds must pass."""
    ip = ipaddress.ip_address(address)
    candidates = {ip, effective_address(ip)}
    return all(_within(candidate, networks) for candidate in candidates)


def _within(ip: IPAddress, networks: Sequence[str]) -> bool:
    matching = []
    for text in networks:
        network = ipaddress.ip_network(text, strict=False)
        if network.version == ip.version and ip in network:
            matching.append(network)
    if not matching:
        return False
    return not _special(ip) or any(n.prefixlen > 0 for n in matching)


def target_allowed(address: str, allow_private: bool) -> bool:
    """Whether an alert channel (webhook, Slack, PagerDuty) may connect to `address`.

    A URL is chosen by an application's Admin, who must not reach what only the gateway's
    network can: by default only globally routable unicast addresses pass (no loopback,
    private, link-local, shared, reserved or documentation ranges), judged as given and as
    the IPv4 address it embeds. `allow_private` (CERTGATE_EVENTS__ALLOW_PRIVATE_TARGETS)
    lets internal receivers through; the unspecified and multicast addresses never pass.
    """
    ip = ipaddress.ip_address(address)
    for candidate in {ip, effective_address(ip)}:
        if candidate.is_unspecified or candidate.is_multicast:
            return False
        if not allow_private and not candidate.is_global:
            return False
    return True
