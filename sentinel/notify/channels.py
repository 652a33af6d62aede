"""Channels: how a rendered message reaches its target, and what counts as its receipt.

Each channel's ``send`` returns a ``Receipt`` (the state it reached and the provider's proof) or
raises ``DeliveryError`` (``permanent``: do not retry; ``bounced``: the address is refused).

- webhook: a signed JSON POST through the SSRF guard; 2xx is the receipt ("delivered"); 3xx,
  and 4xx but 408/429, are permanent failures; the rest is retried.
- email: SMTP (plain, STARTTLS or implicit TLS, optional auth); the server's acceptance is the
  receipt; a refused recipient is "bounced". ``Message-ID`` carries the idempotency key.
- mqtt: a QoS 1 publish in Frigate's shape (``{type, before, after}``) on ``<prefix>/events``
  (and ``<prefix>/reviews``); the broker's PUBACK is the receipt.
- sms: a Twilio-shaped ``Messages.json`` POST through the SSRF guard; the provider's message
  sid is the receipt of "sent" (its status callback later makes it delivered or failed).
- apprise: the long tail (ntfy, Telegram, Slack, Pushover, …) through an Apprise URL. Apprise
  answers only True/False, so True is the receipt ("delivered") and False a transient failure
  (retried with backoff); the idempotency key ends the message text. The outbound guard
  checks every URL whose plugin contacts a host of the user's choice (json/form/xml, ntfy,
  gotify, matrix, mmost, rocket, apprise, hassio, mailto, ...: ``apprise_user_hosts``) when the
  subscription is saved and before each send, and again at connect time: Apprise sends inside
  ``guarded_connections`` (its pool threads get our context), so every host it resolves —
  redirect targets, Matrix discovery, a DNS answer that changed since the check — is checked.
"""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import httpcore

from sentinel.config import MqttSettings, SmsSettings, SmtpSettings
from sentinel.notify.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature,
)
from sentinel.notify.ssrf import Blocked, GuardedClient, UrlPolicy, check_url, guarded_connections

__all__ = [
    "AppriseChannel",
    "DeliveryError",
    "EmailChannel",
    "MqttChannel",
    "OutMessage",
    "Receipt",
    "Sender",
    "SmsChannel",
    "WebhookChannel",
]


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message to one target, rendered."""

    key: str  # the idempotency key
    recipient: str
    target: str
    kind: str  # new | update | end | digest | test
    subject: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)  # structured (webhook, mqtt)


@dataclass(frozen=True, slots=True)
class Receipt:
    state: str  # "delivered" or "sent"
    provider_id: str | None = None
    detail: str = ""


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, bounced: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent or bounced
        self.bounced = bounced


class Sender(Protocol):
    def send(self, msg: OutMessage) -> Receipt: ...

    def close(self) -> None: ...


def _http(client: GuardedClient, url: str, headers: dict[str, str], body: bytes) -> Any:
    try:
        return client.request("POST", url, headers=headers, content=body)
    except Blocked as exc:
        raise DeliveryError(f"refused by the outbound guard: {exc}", permanent=True) from exc
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def _classify(status: int, what: str) -> None:
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise DeliveryError(f"{what} answered {status}: redirects are not followed", permanent=True)
    permanent = 400 <= status < 500 and status not in (408, 425, 429)
    raise DeliveryError(f"{what} answered {status}", permanent=permanent)


class WebhookChannel:
    """Signed JSON POSTs (see ``sentinel.notify.signing``)."""

    def __init__(self, client: GuardedClient, secret: str) -> None:
        self.client = client
        self.secret = secret

    def send(self, msg: OutMessage) -> Receipt:
        body = json.dumps(
            {"id": msg.key, "kind": msg.kind, "subject": msg.subject, "text": msg.body}
            | msg.payload,
            separators=(",", ":"),
        ).encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sentinel-notifier",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: webhook_signature(self.secret, ts, body),
            IDEMPOTENCY_HEADER: msg.key,
        }
        answer = _http(self.client, msg.target, headers, body)
        _classify(answer.status, "the webhook")
        return Receipt("delivered", None, f"HTTP {answer.status}")

    def close(self) -> None:
        self.client.close()


class SmsChannel:
    """A Twilio-shaped SMS API; the answer's ``sid`` is the provider receipt."""

    def __init__(self, client: GuardedClient, settings: SmsSettings, callback_url: str) -> None:
        self.client = client
        self.settings = settings
        self.callback_url = callback_url

    def send(self, msg: OutMessage) -> Receipt:
        s = self.settings
        url = f"{s.base_url.rstrip('/')}/2010-04-01/Accounts/{s.account_sid}/Messages.json"
        form = {"To": msg.target, "From": s.sender, "Body": msg.body[:1600]}
        if self.callback_url:
            form["StatusCallback"] = self.callback_url
        auth = base64.b64encode(f"{s.account_sid}:{s.auth_token}".encode()).decode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Basic {auth}",
            "I-Twilio-Idempotency-Token": msg.key,
            IDEMPOTENCY_HEADER: msg.key,
        }
        answer = _http(self.client, url, headers, urlencode(form).encode())
        _classify(answer.status, "the SMS provider")
        try:
            sid = str(json.loads(answer.body)["sid"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DeliveryError(f"the SMS provider's answer has no sid: {exc}") from exc
        return Receipt("sent", sid, f"HTTP {answer.status}")

    def close(self) -> None:
        self.client.close()


class EmailChannel:
    """SMTP with optional STARTTLS / implicit TLS and authentication, one connection per mail."""

    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._ssl_context = ssl_context

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """Always verifying (certificate and host name): a private CA is trusted through
        ``ca_file``, never by turning verification off. Made on first use, so a bad
        ``ca_file`` fails the email deliveries (with the reason), not the other channels."""
        if self._ssl_context is None:
            ca = self.settings.ca_file
            try:
                self._ssl_context = ssl.create_default_context(cafile=str(ca) if ca else None)
            except (OSError, ssl.SSLError) as exc:
                raise DeliveryError(
                    f"notify.smtp.ca_file {ca}: cannot load it: {exc}", permanent=True
                ) from exc
        return self._ssl_context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=self.ssl_context)
        context = self.ssl_context if s.security == "starttls" else None
        conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        if context is not None:
            conn.starttls(context=context)
        return conn

    def send(self, msg: OutMessage) -> Receipt:
        s = self.settings
        mail = EmailMessage()
        mail["From"] = s.sender
        mail["To"] = msg.target
        mail["Subject"] = msg.subject
        mail["Date"] = formatdate()
        mail["Message-ID"] = f"<{msg.key}@sentinel>"
        mail[IDEMPOTENCY_HEADER] = msg.key
        mail.set_content(msg.body)
        try:
            with self._connect() as conn:
                if s.username:
                    conn.login(s.username, s.password or "")
                refused = conn.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc.recipients}", bounced=True) from exc
        except smtplib.SMTPAuthenticationError as exc:
            said = exc.smtp_error
            said = said.decode(errors="replace") if isinstance(said, bytes) else said
            raise DeliveryError(
                f"SMTP authentication failed for {s.username!r}: {exc.smtp_code} {said}",
                permanent=True,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:  # e.g. no AUTH offered (before TLS)
            raise DeliveryError(f"SMTP server does not support it: {exc}", permanent=True) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"SMTP server certificate not trusted ({exc.verify_message}); "
                "trust its CA with notify.smtp.ca_file",
                permanent=True,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise DeliveryError(f"recipient refused: {refused}", bounced=True)
        return Receipt("delivered", f"<{msg.key}@sentinel>", "250 accepted")

    def close(self) -> None:
        return None


class MqttChannel:
    """QoS 1 publishes on one kept-alive connection (paho-mqtt), PUBACK as receipt.

    The topic is ``<settings.prefix>/events`` (and a review on ``<prefix>/reviews``), or under
    the subscription's own prefix (its target) when that is not the default ``-``.
    """

    def __init__(self, settings: MqttSettings) -> None:
        import paho.mqtt.client as mqtt

        self.settings = settings
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,  # type: ignore[attr-defined]
            client_id=f"sentinel-notifier-{id(self):x}",
        )
        if settings.username:
            self._client.username_pw_set(settings.username, settings.password)
        self._client.reconnect_delay_set(1, 10)
        self._connected = False

    def _ensure(self) -> None:
        if not self._connected:
            self._client.connect(self.settings.host, self.settings.port, keepalive=30)
            self._client.loop_start()
            self._connected = True

    def send(self, msg: OutMessage) -> Receipt:
        prefix = self.settings.prefix if msg.target in ("", "-") else msg.target.rstrip("/")
        event = msg.payload.get("event") or {}
        review = msg.payload.get("review")
        try:
            with self._lock:
                self._ensure()
                infos = [self._client.publish(f"{prefix}/events", json.dumps(event), qos=1)]
                if review is not None:
                    infos.append(
                        self._client.publish(f"{prefix}/reviews", json.dumps(review), qos=1)
                    )
            for info in infos:
                info.wait_for_publish(timeout=self.settings.timeout_s)
                if not info.is_published():
                    raise DeliveryError("the broker did not acknowledge the publish in time")
        except DeliveryError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            with self._lock:
                self._connected = False
                self._client.loop_stop()
            raise DeliveryError(f"mqtt: {type(exc).__name__}: {exc}") from exc
        return Receipt("delivered", str(infos[0].mid), "PUBACK")

    def close(self) -> None:
        with self._lock:
            if self._connected:
                self._client.disconnect()
                self._client.loop_stop()
                self._connected = False


# Attributes some plugins connect to instead of (or besides) ``host``: mailto's ``smtp=``,
# xmpp's server, Azure Communication Services' endpoint.
_APPRISE_HOST_ATTRS = ("smtp_host", "xmpp_host", "endpoint")


def apprise_user_hosts(plugin: Any) -> list[tuple[str, int | None, bool]]:
    """(host, port, secure) of each host of the user's choice that an Apprise plugin instance
    will contact; empty for a fixed public service (tgram, slack, pover, ...).

    A plugin takes a user host when one of its URL templates has ``{host}`` (json, form, xml,
    ntfy, gotify, matrix, mmost, rocket, apprise, hassio, mailto, mqtt, ...); plugins that also
    have a hosted mode (ntfy://topic, notica://token, ...) leave ``host`` empty in that mode.
    Some connect to another host named in the URL (``_APPRISE_HOST_ATTRS``).
    """
    port = getattr(plugin, "port", None)
    port = int(port) if port else None
    secure = bool(getattr(plugin, "secure", False))
    found: list[tuple[str, int | None, bool]] = []
    templates = getattr(type(plugin), "templates", ()) or ()
    host = str(getattr(plugin, "host", "") or "").strip("[]")
    if host and any("{host}" in t for t in templates):
        found.append((host, port, secure))
    for attr in _APPRISE_HOST_ATTRS:
        value = getattr(plugin, attr, None)
        if not isinstance(value, str) or not value.strip():
            continue
        other = value.strip()
        if "://" in other:
            other = urlsplit(other).hostname or ""
        other = other.strip("[]")
        if other and other != host:
            found.append(
                (other, port if attr == "smtp_host" else None, secure or attr == "endpoint")
            )
    return found


def check_apprise_url(url: str, policy: UrlPolicy) -> None:
    """Blocked unless Apprise understands ``url`` and every host of the user's choice that
    its plugin contacts (``apprise_user_hosts``) passes the outbound guard: resolved, no
    loopback/private/link-local/metadata address unless in ``allow_hosts``, and an
    unencrypted transport only with ``allow_http``."""
    import apprise

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if not plugin:
        raise Blocked("Apprise does not understand this URL")
    for host, port, secure in apprise_user_hosts(plugin):
        netloc = f"[{host}]" if ":" in host else host
        scheme = "https" if secure else "http"
        check_url(f"{scheme}://{netloc}{f':{port}' if port else ''}/", policy)


class AppriseChannel:
    """An Apprise URL per message, behind our own tracking (see the module docstring)."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    def send(self, msg: OutMessage) -> Receipt:
        import apprise

        try:
            check_apprise_url(msg.target, self.policy)
        except Blocked as exc:
            raise DeliveryError(f"refused by the outbound guard: {exc}", permanent=True) from exc
        sender = apprise.Apprise()
        sender.add(msg.target)
        body = f"{msg.body}\n\nid: {msg.key}"
        with guarded_connections(self.policy) as guard:
            sent = sender.notify(title=msg.subject, body=body)
        if guard.blocked is not None:
            raise DeliveryError(
                f"refused by the outbound guard at connect time: {guard.blocked}", permanent=True
            )
        if not sent:
            raise DeliveryError("apprise reported a failure")
        return Receipt("delivered", None, "apprise: accepted")

    def close(self) -> None:
        return None
