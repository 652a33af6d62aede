"""The outbound-URL guard: webhooks and the SMS provider reach only public addresses.

``check_url`` refuses what is not https (unless ``allow_http``) and any host resolving to a
loopback, private, link-local, multicast, reserved, unspecified or cloud-metadata address (one
bad address among several is enough). The check is repeated at connect time by
``GuardedBackend``, httpcore's network backend that resolves, checks and connects to the checked
address itself, so a DNS answer that changes between check and connect (rebinding) is caught.
``GuardedClient`` never follows redirects (a 3xx is a failed delivery, whatever its target),
bounds the time of every phase and reads at most ``max_bytes`` of an answer.

``allow_hosts`` exempts named hosts or IPs from the address check (local sinks, the tests).

Code that does its own networking (Apprise's plugins: requests, smtplib) runs inside
``guarded_connections``: while it is active in a context, every name resolution made in it
(``socket.getaddrinfo``, which requests/urllib3 and ``socket.create_connection`` call before
each connect, redirects and discovery lookups included) is checked the same way, and the
connection can only use the addresses checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore

__all__ = [
    "Blocked",
    "ConnectionGuard",
    "GuardedBackend",
    "GuardedClient",
    "HttpAnswer",
    "UrlPolicy",
    "check_url",
    "guarded_connections",
]

Resolver = Callable[[str, int], list[str]]
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class Blocked(ValueError):  # noqa: N818 - a ValueError named for what it refuses
    """An outbound URL or address the guard refuses."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool = False
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    resolver: Resolver = system_resolver

    def exempt(self, host: str) -> bool:
        return host.lower().strip("[]") in self.allow_hosts


def address_problem(addr: str) -> str | None:
    """Why an IP address is refused, or None for a public unicast address."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "a cloud metadata address"
    for attr, why in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attr):
            return f"a {why} address"
    if ip in ipaddress.ip_network("100.64.0.0/10"):  # carrier-grade NAT
        return "a shared (CGNAT) address"
    return None


def check_addresses(host: str, addrs: Iterable[str]) -> list[str]:
    """The addresses, if all are public; Blocked otherwise (or if there are none)."""
    found = list(addrs)
    if not found:
        raise Blocked(f"{host} does not resolve")
    for addr in found:
        problem = address_problem(addr)
        if problem:
            raise Blocked(f"{host} resolves to {addr}, {problem}")
    return found


def check_url(url: str, policy: UrlPolicy) -> tuple[str, str, int]:
    """(scheme, host, port) of an allowed URL; Blocked with the reason otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Blocked(f"malformed URL: {exc}") from exc
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in ("https", "http"):
        raise Blocked(f"scheme {scheme!r} is not allowed")
    if scheme == "http" and not policy.allow_http:
        raise Blocked("plain http is not allowed (notify.allow_http)")
    if not host:
        raise Blocked("no host")
    if parts.username or parts.password:
        raise Blocked("credentials in a URL are not allowed")
    port = port or (443 if scheme == "https" else 80)
    if not policy.exempt(host):
        try:
            addrs = policy.resolver(host, port)
        except OSError as exc:
            raise Blocked(f"{host} does not resolve: {exc}") from exc
        check_addresses(host, addrs)
    return scheme, host, port


@dataclass
class ConnectionGuard:
    """One ``guarded_connections`` block: its policy and what it refused (first reason)."""

    policy: UrlPolicy
    blocked: str | None = None


# A context variable, not a thread-local: Apprise runs each service on a pool thread with a
# copy of the caller's context (``submit_with_context``), so the guard follows it there.
_ACTIVE: contextvars.ContextVar[ConnectionGuard | None] = contextvars.ContextVar(
    "sentinel_connection_guard", default=None
)
_REAL_GETADDRINFO = socket.getaddrinfo
_INSTALL = threading.Lock()


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    infos = _REAL_GETADDRINFO(host, port, *args, **kwargs)
    guard = _ACTIVE.get()
    if guard is None:
        return infos
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    if guard.policy.exempt(name):
        return infos
    try:
        check_addresses(name, [str(info[4][0]) for info in infos])
    except Blocked as exc:
        guard.blocked = guard.blocked or str(exc)
        # What resolvers raise: callers handle it as "cannot connect", never as a crash.
        raise socket.gaierror(socket.EAI_NONAME, f"refused by the outbound guard: {exc}") from exc
    return infos


@contextlib.contextmanager
def guarded_connections(policy: UrlPolicy) -> Iterator[ConnectionGuard]:
    """Checks every address resolved inside the block against ``policy``: in this thread,
    and in threads that run with a copy of its context (contextvars).

    Installs a ``socket.getaddrinfo`` wrapper once per process; it checks only inside such a
    block, so other threads (the database, Redis, the SMTP relay, MQTT) resolve as before.
    """
    with _INSTALL:
        if socket.getaddrinfo is not _guarded_getaddrinfo:
            socket.getaddrinfo = _guarded_getaddrinfo
    guard = ConnectionGuard(policy)
    token = _ACTIVE.set(guard)
    try:
        yield guard
    finally:
        _ACTIVE.reset(token)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks, and connects to the checked address (defeats DNS rebinding)."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self.policy.exempt(host):
            addrs = self.policy.resolver(host, port)
        else:
            try:
                addrs = check_addresses(host, self.policy.resolver(host, port))
            except OSError as exc:
                raise Blocked(f"{host} does not resolve: {exc}") from exc
        # No Nagle: a request's head and body go out as separate writes, and waiting for the
        # peer's delayed ACK between them costs ~40 ms per request.
        options = [*(socket_options or ()), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        return self._inner.connect_tcp(addrs[0], port, timeout, local_address, options)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: dict[str, str]


class GuardedClient:
    """An HTTP client for outbound notifications: guarded, bounded, no redirects."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout_s: float = 10.0,
        max_bytes: int = 65536,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            network_backend=GuardedBackend(policy),
            max_connections=32,
            retries=0,
        )

    def request(
        self, method: str, url: str, *, headers: dict[str, str], content: bytes
    ) -> HttpAnswer:
        """Sends one request; Blocked for a refused URL, httpcore errors for network ones.

        The answer's body is cut at ``max_bytes``; a 3xx is returned as is (never followed).
        """
        check_url(url, self.policy)
        t = self.timeout_s
        timeouts = {"connect": t, "read": t, "write": t, "pool": t}
        hdrs = [(k.encode(), v.encode()) for k, v in headers.items()]
        with self._pool.stream(
            method, url, headers=hdrs, content=content, extensions={"timeout": timeouts}
        ) as resp:
            chunks, size = [], 0
            for chunk in resp.iter_stream():
                chunks.append(chunk)
                size += len(chunk)
                if size >= self.max_bytes:
                    break
            body = b"".join(chunks)[: self.max_bytes]
            out_headers = {k.decode().lower(): v.decode("latin-1") for k, v in resp.headers}
            return HttpAnswer(resp.status, body, out_headers)

    def close(self) -> None:
        self._pool.close()
