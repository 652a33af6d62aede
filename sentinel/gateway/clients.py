"""Finding the real client address behind reverse proxies.

``X-Forwarded-For`` is a plain request header: anyone can send one. It is only evidence when
the hop that handed it to us is a proxy we run, and then only the entries our own proxies
appended. Rate limits, lock-outs and audit records all key on this address, so getting it wrong
either lets an attacker pick a fresh identity per request or pins every user on one proxy.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

__all__ = ["UNKNOWN_CLIENT", "client_address", "parse_address"]

UNKNOWN_CLIENT = "unknown"
# More proxies than this in front of one service is a misconfiguration or an attack; stopping
# bounds the work done on a hostile header.
_MAX_HOPS = 16
_PORT = re.compile(r"[0-9]{1,5}")  # ASCII digits only; str.isdigit() accepts other scripts
_Net = IPv4Network | IPv6Network


def parse_address(text: str) -> IPv4Address | IPv6Address | None:
    """Parses ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:443``.

    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``, what a dual-stack socket reports) become
    plain IPv4, so one client has one identity whichever way it connects; IPv6 zone ids are
    dropped for the same reason.

    Returns:
        The address, or None for anything else (host names, ``unknown``, junk).
    """
    s = text.strip()
    if not s or len(s) > 64:
        return None
    bracketed = s.startswith("[")
    port = None
    if bracketed:  # "[v6]" or "[v6]:port"
        host, sep, rest = s[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif s.count(":") == 1:  # "v4:port"; an IPv6 address has at least two colons
        host, port = s.split(":")
    else:
        host = s
    if port is not None and not (_PORT.fullmatch(port) and int(port) <= 65535):
        return None
    try:
        ip = ip_address(host)
    except ValueError:
        return None
    if not isinstance(ip, IPv6Address):
        return None if bracketed else ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.scope_id is not None:
        return IPv6Address(host.split("%", 1)[0])
    return ip


@functools.lru_cache(maxsize=32)
def _networks(cidrs: tuple[str, ...]) -> tuple[_Net, ...]:
    nets: list[_Net] = []
    for cidr in cidrs:
        try:
            nets.append(ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {cidr!r} is not an IP address or CIDR") from None
    return tuple(nets)


def _is_trusted(ip: IPv4Address | IPv6Address, nets: tuple[_Net, ...]) -> bool:
    return any(ip in net for net in nets)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]
) -> str:
    """The address of the client that made this request.

    If the direct peer is not one of ``trusted_proxies``, the peer is the client and
    ``X-Forwarded-For`` is ignored entirely: a header sent by an untrusted host changes nothing.

    If the peer is trusted, the header is walked from the right (the entry our nearest proxy
    appended) leftwards, skipping trusted proxies, and the first untrusted address is the client.
    Entries further left were written by the client itself and are never believed.

    If an entry is not an IP address (``unknown``, a host name, junk, an empty slot), the walk
    stops and the last trusted hop is returned. That is the safe choice: the alternative, skipping
    the bad entry, would let whatever lies to its left, possibly attacker-written, be believed.
    The cost is that such requests are attributed to the proxy, which is visible and fixable.

    Args:
        peer: The socket peer, ``host`` or ``host:port`` (None for a Unix socket).
        forwarded_for: The ``X-Forwarded-For`` value. When a request carries several such header
            lines, join them with "," in order (RFC 9110); taking only the first would read the
            client-written line and miss the one our proxy appended.
        trusted_proxies: CIDRs or addresses of our own reverse proxies.

    Returns:
        The client address in canonical form, or ``"unknown"`` when the peer is not an IP.

    Raises:
        ValueError: An entry of ``trusted_proxies`` is not a CIDR (a configuration error).
    """
    nets = _networks(tuple(trusted_proxies))
    ip = parse_address(peer) if peer else None
    if ip is None:
        return UNKNOWN_CLIENT
    if not forwarded_for or not _is_trusted(ip, nets):
        return str(ip)
    last_trusted = ip
    # rsplit bounds the work: at most _MAX_HOPS entries are looked at.
    hops = forwarded_for.rsplit(",", _MAX_HOPS)
    for raw in reversed(hops[-_MAX_HOPS:]):
        hop = parse_address(raw)
        if hop is None:
            break
        if not _is_trusted(hop, nets):
            return str(hop)
        last_trusted = hop
    return str(last_trusted)
