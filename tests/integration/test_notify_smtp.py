"""Email over a real aiosmtpd server with STARTTLS, implicit TLS and AUTH: a certificate made
in the test and trusted through ``notify.smtp.ca_file`` (verification is never turned off)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from sentinel.config import MqttSettings, NotifySettings, SmtpSettings
from sentinel.domain.alerts import AlertDecision, DecidedBy, Severity
from sentinel.notify.channels import DeliveryError, EmailChannel, OutMessage
from sentinel.notify.relay import Relay, make_limiter, make_senders
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.notify_repo import NotifyRepository
from sentinel.store.repo import CameraRepository
from tests.utils.notify_sinks import SmtpSink
from tests.utils.tls import ServerCert, make_server_cert

USERS = {"sentinel": "right-password"}
# The implicit-TLS sink turns aiosmtpd's STARTTLS-only "AUTH over TLS" check off (see SmtpSink).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_server_cert(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture(params=["starttls", "tls"])
def secure_smtp(request: pytest.FixtureRequest, cert: ServerCert) -> Iterator[SmtpSink]:
    sink = SmtpSink(request.param, cert, USERS)
    sink.start()
    yield sink
    sink.stop()


def smtp_settings(sink: SmtpSink, **kw: Any) -> SmtpSettings:
    base: dict[str, Any] = {
        "port": sink.port,
        "security": sink.security,
        "timeout_s": 5.0,
    }
    base.update(kw)
    return SmtpSettings(**base)


def message(to: str = "alice@example.com") -> OutMessage:
    return OutMessage(uuid.uuid4().hex, "alice", to, "new", "[HIGH] person on gate", "hello")


def test_tls_and_auth_deliver(secure_smtp: SmtpSink, cert: ServerCert) -> None:
    channel = EmailChannel(
        smtp_settings(
            secure_smtp, username="sentinel", password="right-password", ca_file=cert.ca_file
        )
    )
    receipt = channel.send(message())
    assert receipt.state == "delivered"
    (mail,) = secure_smtp.messages
    assert mail["Subject"] == "[HIGH] person on gate" and mail["To"] == "alice@example.com"
    assert secure_smtp.tls_sessions == 1  # the mail went over TLS
    assert secure_smtp.logins == [("sentinel", True)]


def test_an_untrusted_certificate_is_refused_by_default(secure_smtp: SmtpSink) -> None:
    """No ca_file: the test CA is not in the system store, so the handshake fails, for good."""
    channel = EmailChannel(smtp_settings(secure_smtp, username="sentinel", password="x" * 8))
    with pytest.raises(DeliveryError, match="certificate not trusted") as err:
        channel.send(message())
    assert err.value.permanent
    assert secure_smtp.messages == [] and secure_smtp.logins == []  # no password was sent


def test_a_wrong_password_fails_the_delivery_for_good(
    secure_smtp: SmtpSink, cert: ServerCert, store_engine: Engine, tmp_path: Path
) -> None:
    """Through the relay: the delivery ends ``failed`` after one attempt, with the reason."""
    smtp = smtp_settings(
        secure_smtp, username="sentinel", password="wrong-password", ca_file=cert.ca_file
    )
    settings = NotifySettings(
        webhook_secret="s", link_secret="l", smtp=smtp, mqtt=MqttSettings(enabled=False)
    )
    NotifyRepository(store_engine).put_subscription(
        "sub_mail",
        {"name": "mail", "recipient": "alice", "channel": "email", "target": "alice@example.com"},
        "test",
        create=True,
    )
    decision = AlertDecision(True, Severity.HIGH, "person", ("person",), "look", DecidedBy.RULES)
    AlertRepository(store_engine).record_rule_decision("e1", "gate", "person", decision)
    repo = NotifyRepository(store_engine)
    relay = Relay(
        repo,
        AlertRepository(store_engine),
        CameraRepository(store_engine),
        make_senders(settings, "s"),
        make_limiter(settings, None),
        settings,
        "l",
    )
    try:
        for _ in range(4):
            relay.tick()
    finally:
        relay.close()
    (row,) = repo.list_deliveries()[0]
    assert row.state == "failed" and row.attempts == 1
    assert "SMTP authentication failed for 'sentinel'" in (row.last_error or "")
    assert "535" in (row.last_error or "")
    # smtplib tries each mechanism offered (PLAIN, LOGIN): every one refused, nothing sent
    assert secure_smtp.logins and set(secure_smtp.logins) == {("sentinel", False)}
    assert secure_smtp.messages == []


def test_starttls_is_required_when_configured(cert: ServerCert) -> None:
    """A plain server that offers no STARTTLS: the channel refuses to go on in clear text."""
    sink = SmtpSink()
    sink.start()
    try:
        settings = SmtpSettings(port=sink.port, security="starttls", ca_file=cert.ca_file)
        with pytest.raises(DeliveryError, match="STARTTLS") as err:
            EmailChannel(settings).send(message())
        assert err.value.permanent and sink.messages == []
    finally:
        sink.stop()


def test_credentials_need_tls() -> None:
    with pytest.raises(ValidationError, match="only over TLS"):
        SmtpSettings(security="none", username="sentinel", password="pw")


def test_a_missing_ca_file_fails_email_only(secure_smtp: SmtpSink, tmp_path: Path) -> None:
    """The channel (and the relay's other channels) still start; the mail fails for good."""
    channel = EmailChannel(smtp_settings(secure_smtp, ca_file=tmp_path / "missing.pem"))
    with pytest.raises(DeliveryError, match=r"ca_file .* cannot load it") as err:
        channel.send(message())
    assert err.value.permanent and secure_smtp.messages == []
