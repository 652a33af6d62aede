"""Web Push's pure parts: RFC 8291 encryption (its Appendix A test vector), VAPID JWTs
(RFC 8292), the key file of the data dir, subscription keys, the payload and who may get it."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sentinel.domain.alerts import Severity
from sentinel.notify.push import may_see, push_payload
from sentinel.notify.subscriptions import AlertView
from sentinel.notify.webpush import (
    MAX_PAYLOAD,
    PushKeys,
    VapidKey,
    b64url,
    b64url_decode,
    decrypt,
    encrypt,
    verify_vapid,
)
from sentinel.store.security_repo import UserRecord

# RFC 8291, Appendix A.
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
MESSAGE = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYW"
    "AmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSx"
    "sj_Qulcy4a-fN"
)
ENDPOINT = "https://push.example.net/wpush/v2/abc"


def private(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(b64), "big"), ec.SECP256R1())


def test_encrypt_reproduces_the_rfc_8291_test_vector() -> None:
    keys = PushKeys.of(UA_PUBLIC, AUTH)
    body = encrypt(PLAINTEXT, keys, salt=b64url_decode(SALT), server_key=private(AS_PRIVATE))
    assert b64url(body) == MESSAGE


def test_decrypt_reads_the_rfc_8291_test_vector() -> None:
    assert decrypt(b64url_decode(MESSAGE), private(UA_PRIVATE), b64url_decode(AUTH)) == PLAINTEXT


def test_every_message_has_a_fresh_salt_and_key_and_only_its_browser_reads_it() -> None:
    browser = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    keys = PushKeys(VapidKey(browser).public_point, auth)
    one, two = encrypt(b"x" * MAX_PAYLOAD, keys), encrypt(b"x" * MAX_PAYLOAD, keys)
    assert one[:16] != two[:16] and one[21:86] != two[21:86]
    assert len(one) <= 4096
    assert decrypt(one, browser, auth) == b"x" * MAX_PAYLOAD
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt(one, browser, os.urandom(16))
    tampered = one[:-1] + bytes([one[-1] ^ 1])
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt(tampered, browser, auth)
    with pytest.raises(ValueError, match="does not fit"):
        encrypt(b"x" * (MAX_PAYLOAD + 1), keys)


@pytest.mark.parametrize(
    ("p256dh", "auth", "problem"),
    [
        (UA_PUBLIC, "BTBZMqHH6r4Tts7J_aSI", "auth must be 16 bytes"),
        (UA_PUBLIC[:-4], AUTH, "uncompressed P-256 point"),
        ("BA" + "A" * 85, AUTH, "not a point on the P-256 curve"),
        ("+" + UA_PUBLIC[1:], AUTH, "base64url"),
    ],
)
def test_subscription_keys_are_checked(p256dh: str, auth: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PushKeys.of(p256dh, auth)


def test_vapid_tokens_are_es256_for_the_endpoints_origin_and_at_most_a_day() -> None:
    key = VapidKey.generate()
    header = key.authorization(ENDPOINT, "mailto:ops@example.com", now=1_000_000)
    claims = verify_vapid(header, ENDPOINT, now=1_000_001)
    assert claims == {
        "aud": "https://push.example.net",
        "exp": 1_000_000 + 43200,
        "sub": "mailto:ops@example.com",
        "k": key.public_key,
    }
    assert len(b64url_decode(key.public_key)) == 65 and b64url_decode(key.public_key)[0] == 4
    with pytest.raises(ValueError, match="aud"):
        verify_vapid(header, "https://other.example.net/x", now=1_000_001)
    with pytest.raises(ValueError, match="exp"):
        verify_vapid(header, ENDPOINT, now=1_000_000 + 43200)
    other = VapidKey.generate().public_key
    forged = header.replace(f"k={key.public_key}", f"k={other}")
    with pytest.raises(ValueError, match="signature"):
        verify_vapid(forged, ENDPOINT, now=1_000_001)
    with pytest.raises(ValueError, match="at most"):
        key.token(ENDPOINT, "mailto:ops@example.com", ttl_s=24 * 3600 + 1)


def test_the_vapid_key_is_made_once_in_the_data_dir_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "keys" / "vapid.pem"
    made = VapidKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert VapidKey.load_or_create(path).public_key == made.public_key
    assert [p.name for p in path.parent.iterdir()] == ["vapid.pem"]  # no temp file left
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="must not be accessible"):
        VapidKey.load_or_create(path)


def view(**kw: Any) -> AlertView:
    base: dict[str, Any] = dict(
        id="al-1",
        camera_id="gate",
        label="person",
        severity=Severity.HIGH,
        summary="someone at the gate",
        status="open",
        created_at=datetime(2026, 12, 7, tzinfo=UTC),
    )
    return AlertView(**(base | kw))


def test_the_payload_is_small_and_carries_no_links_with_tokens() -> None:
    p = push_payload(view(id="al/1?x", summary="s" * 5000))
    assert p["url"] == "/review?alert=al%2F1%3Fx"
    assert p["title"] == "High alert: person on gate" and len(p["body"]) == 600
    assert set(p) == {"title", "body", "alert_id", "camera_id", "url"}
    assert len(json.dumps(p).encode()) < MAX_PAYLOAD
    assert push_payload(view(summary=""))["body"] == "person on gate"


def user(role: str = "operator", cameras: tuple[str, ...] | None = None, **kw: Any) -> UserRecord:
    t = datetime(2026, 12, 7, tzinfo=UTC)
    base: dict[str, Any] = dict(
        id="u1",
        username="u",
        password_hash="x",
        role=role,
        cameras=cameras,
        disabled=False,
        totp_secret=None,
        totp_enabled=False,
        totp_last_step=None,
        created_at=t,
        updated_at=t,
    )
    return UserRecord(**(base | kw))


@pytest.mark.parametrize(
    ("who", "camera", "groups", "sees"),
    [
        (user(), "gate", (), True),
        (user("viewer"), "gate", (), True),
        (user("annotator"), "gate", (), False),  # no alerts:read
        (user(cameras=("yard",)), "gate", (), False),
        (user(cameras=("gate",)), "gate", (), True),
        (user(cameras=("group:front",)), "gate", ("front",), True),
        (user(cameras=("group:front",)), "gate", ("back",), False),
        (user(cameras=()), "gate", (), False),
        (user(disabled=True), "gate", (), False),
        (user("nobody"), "gate", (), False),
        (None, "gate", (), False),
    ],
)
def test_who_may_get_an_alerts_push(
    who: UserRecord | None, camera: str, groups: tuple[str, ...], sees: bool
) -> None:
    assert may_see(who, camera, groups) is sees
