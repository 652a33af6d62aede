"""The outbound-URL guard: every private target refused, rebinding caught at connect time."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from sentinel.notify.channels import apprise_user_hosts, check_apprise_url
from sentinel.notify.ssrf import Blocked, GuardedClient, UrlPolicy, address_problem, check_url


def fixed(*addrs: str) -> UrlPolicy:
    return UrlPolicy(allow_http=True, resolver=lambda host, port: list(addrs))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://localhost/",  # a DNS name resolving to loopback (the real resolver)
        "http://localhost.localdomain/",
    ],
)
def test_private_targets_are_refused(url: str) -> None:
    with pytest.raises(Blocked):
        check_url(url, UrlPolicy(allow_http=True))


@pytest.mark.parametrize(
    ("url", "policy", "why"),
    [
        ("http://example.com/", UrlPolicy(resolver=lambda h, p: ["93.184.215.14"]), "plain http"),
        ("ftp://example.com/", UrlPolicy(), "scheme"),
        ("https://user:pw@example.com/", fixed("93.184.215.14"), "credentials"),
        ("https://evil.example/", fixed("93.184.215.14", "10.1.1.1"), "private"),
        ("https://rebind.example/", fixed("127.0.0.1"), "loopback"),
        ("https:///nohost", UrlPolicy(), "no host"),
    ],
)
def test_refusals_say_why(url: str, policy: UrlPolicy, why: str) -> None:
    with pytest.raises(Blocked, match=why):
        check_url(url, policy)


def test_public_and_allowed_hosts_pass() -> None:
    assert check_url("https://example.com/x", fixed("93.184.215.14")) == (
        "https",
        "example.com",
        443,
    )
    assert address_problem("8.8.8.8") is None
    allowed = UrlPolicy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"}))
    assert check_url("http://127.0.0.1:9/", allowed)[1] == "127.0.0.1"


class _Redirect(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self) -> None:
        type(self).hits += 1
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.1:1/secret")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_rebinding_is_caught_at_connect_time(redirecting: int) -> None:
    """The name resolves to a public address at check time, to loopback at connect time."""
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    policy = UrlPolicy(allow_http=True, resolver=lambda h, p: next(answers))
    client = GuardedClient(policy, timeout_s=2)
    with pytest.raises(Blocked, match="loopback"):
        client.request("POST", f"http://rebind.test:{redirecting}/", headers={}, content=b"{}")
    assert _Redirect.hits == 0


def test_redirects_are_never_followed(redirecting: int) -> None:
    """Even from an allowed sink, a redirect (here to loopback) is returned, not followed."""
    policy = UrlPolicy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"}))
    client = GuardedClient(policy, timeout_s=2)
    before = _Redirect.hits
    answer = client.request("POST", f"http://127.0.0.1:{redirecting}/", headers={}, content=b"")
    assert answer.status == 302 and _Redirect.hits == before + 1


def test_answers_are_cut_at_max_bytes() -> None:
    class Big(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 100_000)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        policy = UrlPolicy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"}))
        client = GuardedClient(policy, timeout_s=2, max_bytes=1024)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        answer = client.request("POST", url, headers={}, content=b"")
        assert answer.status == 200 and len(answer.body) == 1024
    finally:
        server.shutdown()


# -- Apprise URLs ---------------------------------------------------------------------------

_NAMES = {
    "example.com": ["93.184.215.14"],
    "ntfy.example.com": ["93.184.215.14"],
    "chat.example.com": ["93.184.215.14"],
    "inside.example.com": ["10.20.30.40"],
    "rebound.example.com": ["127.0.0.1"],
}


def _resolve(host: str, port: int) -> list[str]:
    import ipaddress

    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        if host in _NAMES:
            return _NAMES[host]
        raise OSError(f"no such name {host}") from None


def apprise_policy(**kw: object) -> UrlPolicy:
    return UrlPolicy(resolver=_resolve, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        # every plugin that contacts a host of the user's choice is checked, not only json
        ("jsons://127.0.0.1/x", "loopback"),
        ("forms://10.0.0.5/x", "private"),
        ("xmls://[::1]/x", "loopback"),
        ("ntfys://127.0.0.1/alerts", "loopback"),
        ("ntfys://169.254.169.254/alerts", "metadata"),
        ("ntfys://rebound.example.com/alerts", "loopback"),  # a name resolving to loopback
        ("gotifys://192.168.1.10/token", "private"),
        ("matrixs://user:pass@10.0.0.1/#room", "private"),
        ("mmosts://inside.example.com/token", "private"),
        ("rockets://user:pass@172.16.0.9/#chan", "private"),
        ("apprises://127.0.0.1/config-key", "loopback"),
        ("hassios://10.0.0.3/long-lived-token", "private"),
        ("mailtos://user:pw@inside.example.com?to=me@example.com", "private"),
        ("mailtos://user:pw@example.com?smtp=10.0.0.7&to=me@example.com", "private"),  # smtp=
        ("gotify://chat.example.com/token", "plain http"),  # unencrypted without allow_http
        ("json://chat.example.com/x", "plain http"),
        ("ntfys://nowhere.invalid/alerts", "does not resolve"),
        ("notaservice://whatever", "does not understand"),
    ],
)
def test_apprise_user_hosts_are_guarded(url: str, why: str) -> None:
    with pytest.raises(Blocked, match=why):
        check_apprise_url(url, apprise_policy())


@pytest.mark.parametrize(
    "url",
    [
        # well-known public services: their host is fixed, nothing of the user's to check
        "tgram://123456789:abcdefghijklmnopqrstuvwxyzABCDEFGHI/12345",
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "pover://abcdefghijklmnopqrstuvwxyz1234@abcdefghijklmnopqrstuvwxyz1234",
        "https://discord.com/api/webhooks/4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
        "ntfy://alerts-topic",  # ntfy.sh, the hosted service
        "notica://abcdefg",
        # the user's host, public
        "ntfys://ntfy.example.com/alerts",
        "mmosts://chat.example.com/token",
    ],
)
def test_apprise_public_services_pass(url: str) -> None:
    check_apprise_url(url, apprise_policy())


def test_apprise_allowed_hosts_are_exempt() -> None:
    policy = apprise_policy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"}))
    check_apprise_url("ntfy://127.0.0.1/alerts", policy)
    with pytest.raises(Blocked, match="loopback"):
        check_apprise_url("ntfy://127.0.0.2/alerts", policy)


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("ntfy://alerts-topic", []),
        ("ntfys://ntfy.example.com/alerts", [("ntfy.example.com", None, True)]),
        ("gotify://10.0.0.1:8080/token", [("10.0.0.1", 8080, False)]),
        ("xmls://[::1]/x", [("::1", None, True)]),
        (
            "mailtos://user:pw@example.com?smtp=10.0.0.7&to=me@example.com",
            [("example.com", 587, True), ("10.0.0.7", 587, True)],
        ),
        ("tgram://123456789:abcdefghijklmnopqrstuvwxyzABCDEFGHI/12345", []),
    ],
)
def test_apprise_user_hosts(url: str, hosts: list[tuple[str, int | None, bool]]) -> None:
    import apprise

    assert apprise_user_hosts(apprise.Apprise.instantiate(url)) == hosts


# -- connect time: what code with its own networking resolves inside guarded_connections ------


def test_guarded_connections_check_what_is_resolved_inside_the_block() -> None:
    import socket
    import threading

    from sentinel.notify.ssrf import guarded_connections

    policy = UrlPolicy(allow_http=True, allow_hosts=frozenset({"127.0.0.1"}))
    with guarded_connections(policy) as guard:
        assert socket.getaddrinfo("127.0.0.1", 80)  # exempt
        with pytest.raises(socket.gaierror, match="outbound guard"):
            socket.getaddrinfo("localhost", 80)  # not exempt: loopback
        other: list[object] = []
        thread = threading.Thread(target=lambda: other.append(socket.getaddrinfo("localhost", 80)))
        thread.start()
        thread.join()
        assert other and other[0]  # another thread is not inside the block
    assert guard.blocked is not None and "loopback" in guard.blocked
    assert socket.getaddrinfo("localhost", 80)  # after the block: as before
