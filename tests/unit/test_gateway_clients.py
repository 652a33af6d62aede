"""Client address resolution behind trusted proxies."""

from __future__ import annotations

import pytest

from sentinel.gateway.clients import UNKNOWN_CLIENT, client_address, parse_address

TRUSTED = ["10.0.0.0/8", "fd00::/8", "127.0.0.1"]


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # Untrusted peer: the header is ignored entirely, whatever it claims.
        ("203.0.113.5:5555", "1.1.1.1", "203.0.113.5"),
        ("203.0.113.5", "10.0.0.7", "203.0.113.5"),
        ("203.0.113.5", "garbage", "203.0.113.5"),
        ("[2001:db8::9]:443", "198.51.100.7", "2001:db8::9"),
        # Trusted peer without a header: the proxy itself (a health check).
        ("10.0.0.2:80", None, "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        # One trusted proxy.
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "198.51.100.7:61000", "198.51.100.7"),
        # The client's own spoofed entries sit to the left of what our proxy appended.
        ("10.0.0.2", "1.1.1.1, 6.6.6.6, 198.51.100.7", "198.51.100.7"),
        # A chain of trusted proxies is skipped from the right.
        ("10.0.0.2", "198.51.100.7, 10.0.0.3", "198.51.100.7"),
        ("127.0.0.1", "1.1.1.1,198.51.100.7,10.9.9.9,10.0.0.3", "198.51.100.7"),
        # Everything trusted: the leftmost trusted hop.
        ("10.0.0.2", "10.0.0.5, 10.0.0.3", "10.0.0.5"),
        # Junk stops the walk at the last trusted hop (never believe what lies beyond it).
        ("10.0.0.2", "198.51.100.7, unknown, 10.0.0.3", "10.0.0.3"),
        ("10.0.0.2", "1.1.1.1, not-an-ip", "10.0.0.2"),
        ("10.0.0.2", "1.1.1.1,,10.0.0.3", "10.0.0.3"),
        ("10.0.0.2", "1.1.1.1, 198.51.100.7:99999", "10.0.0.2"),
        ("10.0.0.2", "1.1.1.1, evil.example.com", "10.0.0.2"),
        ("10.0.0.2", "1.1.1.1, [198.51.100.7]", "10.0.0.2"),
        # IPv6 in every spelling, normalised.
        ("[fd00::1]:443", "2001:DB8::7", "2001:db8::7"),
        ("fd00::1", "[2001:db8::7]:8080, fd00::2", "2001:db8::7"),
        ("::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),  # dual-stack socket
        ("10.0.0.2", "::ffff:198.51.100.7", "198.51.100.7"),
        ("fe80::1%eth0", "1.1.1.1", "fe80::1"),
        # A peer that is not an address.
        (None, "198.51.100.7", UNKNOWN_CLIENT),
        ("", "198.51.100.7", UNKNOWN_CLIENT),
        ("unix:/run/sentinel.sock", "198.51.100.7", UNKNOWN_CLIENT),
        ("garbage", None, UNKNOWN_CLIENT),
    ],
)
def test_client_address(peer: str | None, xff: str | None, expected: str) -> None:
    assert client_address(peer, xff, TRUSTED) == expected


def test_no_trusted_proxies_means_the_header_is_never_read() -> None:
    assert client_address("10.0.0.2", "198.51.100.7", []) == "10.0.0.2"


def test_hostile_header_length_is_bounded() -> None:
    xff = ", ".join(["10.0.0.9"] * 10_000 + ["1.1.1.1"] * 0)
    assert client_address("10.0.0.2", "6.6.6.6, " + xff, TRUSTED).startswith("10.")
    assert client_address("10.0.0.2", "x" * 1_000_000, TRUSTED) == "10.0.0.2"


def test_bad_trusted_proxy_config_is_an_error() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        client_address("10.0.0.2", None, ["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("[::1]:8080", "::1"),
        ("::1", "::1"),
        ("2001:db8::1:80", "2001:db8::1:80"),  # bare IPv6 never carries a port
        ("01.2.3.4", None),  # leading zeros: octal on some parsers, refused
        ("1.2.3.4:", None),
        ("1.2.3.4:port", None),
        ("[::1", None),
        ("[::1]x", None),
        ("::1]:80", None),
        ("x" * 100, None),
        ("unknown", None),
    ],
)
def test_parse_address(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (None if parsed is None else str(parsed)) == expected
