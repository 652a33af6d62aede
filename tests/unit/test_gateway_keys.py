"""The RSA signing key ring: storage, rotation, pruning, JWKS."""

from __future__ import annotations

import hashlib
import json
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sentinel.gateway.keys import KeyRing, kid_for

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys"


def test_creates_one_key_with_private_modes(keydir: Path) -> None:
    ring = KeyRing.load_or_create(keydir, now=T0)
    kid = ring.active.kid
    assert _mode(keydir) == 0o700
    assert sorted(p.name for p in keydir.iterdir() if not p.name.startswith(".")) == [
        f"{kid}.pem",
        "keys.json",
    ]
    assert _mode(keydir / f"{kid}.pem") == 0o600
    assert _mode(keydir / "keys.json") == 0o600
    assert not list(keydir.glob("*.tmp")) and not list(keydir.glob(".*.tmp"))
    assert ring.active.private_key.key_size == 2048
    assert KeyRing.load_or_create(keydir).active.kid == kid  # reload, no second key


def test_kid_is_sha256_of_public_der(keydir: Path) -> None:
    ring = KeyRing.load_or_create(keydir)
    der = ring.active.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ring.active.kid == hashlib.sha256(der).hexdigest()[:16]


def test_rotate_keeps_old_key_for_verification(keydir: Path) -> None:
    ring = KeyRing.load_or_create(keydir, now=T0)
    old = ring.active.kid
    new = ring.rotate(T0 + timedelta(days=30))
    assert new != old and ring.active.kid == new
    assert set(ring.public_keys()) == {old, new}
    manifest = json.loads((keydir / "keys.json").read_text())["keys"]
    assert manifest[old]["retired_at"] == (T0 + timedelta(days=30)).isoformat()
    assert manifest[new]["retired_at"] is None
    reloaded = KeyRing.load_or_create(keydir)
    assert reloaded.active.kid == new
    assert set(reloaded.public_keys()) == {old, new}


def test_prune_removes_only_keys_retired_before_the_cutoff(keydir: Path) -> None:
    ring = KeyRing.load_or_create(keydir, now=T0)
    first = ring.active.kid
    second = ring.rotate(T0 + timedelta(days=1))
    third = ring.rotate(T0 + timedelta(days=2))
    assert ring.prune(T0 + timedelta(days=1)) == []  # retired exactly at the cutoff: kept
    assert ring.prune(T0 + timedelta(days=1, seconds=1)) == [first]
    assert not (keydir / f"{first}.pem").exists()
    assert set(ring.public_keys()) == {second, third}
    assert ring.prune(T0 + timedelta(days=999)) == [second]  # the active key is never pruned
    assert set(KeyRing.load_or_create(keydir).public_keys()) == {third}


def test_rotation_by_another_replica_is_not_lost(keydir: Path) -> None:
    a = KeyRing.load_or_create(keydir, now=T0)
    b = KeyRing.load_or_create(keydir)
    kid_b = b.rotate(T0 + timedelta(days=1))
    kid_a = a.rotate(T0 + timedelta(days=2))
    ring = KeyRing.load_or_create(keydir)
    assert ring.active.kid == kid_a
    assert kid_b in ring.public_keys()


def test_concurrent_first_start_creates_a_single_key(keydir: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        kids = set(pool.map(lambda _: KeyRing.load_or_create(keydir).active.kid, range(4)))
    assert len(kids) == 1
    assert len(list(keydir.glob("*.pem"))) == 1


def test_jwks_matches_the_keys(keydir: Path) -> None:
    ring = KeyRing.load_or_create(keydir, now=T0)
    ring.rotate(T0 + timedelta(days=1))
    jwks = ring.jwks()
    assert {k["kid"] for k in jwks["keys"]} == set(ring.public_keys())
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
        assert (jwk["kty"], jwk["use"], jwk["alg"], jwk["e"]) == ("RSA", "sig", "RS256", "AQAB")
        parsed = jwt.PyJWK(jwk).key
        assert isinstance(parsed, rsa.RSAPublicKey)
        expected = ring.public_keys()[jwk["kid"]].public_numbers()
        assert parsed.public_numbers() == expected
        assert "d" not in jwk and "p" not in jwk  # nothing private leaks


def test_from_pem_first_key_signs_others_verify() -> None:
    k1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    k2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ring = KeyRing.from_pem([_pem(k1), _pem(k2)])
    assert ring.active.kid == kid_for(k1.public_key())
    assert set(ring.public_keys()) == {kid_for(k1.public_key()), kid_for(k2.public_key())}
    with pytest.raises(RuntimeError, match="settings"):
        ring.rotate()
    with pytest.raises(RuntimeError, match="settings"):
        ring.prune(T0)
    with pytest.raises(ValueError, match="twice"):
        KeyRing.from_pem([_pem(k1), _pem(k1)])


@pytest.mark.parametrize(
    ("pems", "message"),
    [
        ([], "at least one"),
        (["not a pem"], "not an unencrypted PEM"),
        ([_pem(ec.generate_private_key(ec.SECP256R1()))], "expected an RSA"),
        ([_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))], ">= 2048"),
    ],
)
def test_from_pem_refuses_unusable_keys(pems: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeyRing.from_pem(pems)


def test_refuses_key_files_readable_by_others(keydir: Path) -> None:
    kid = KeyRing.load_or_create(keydir).active.kid
    (keydir / f"{kid}.pem").chmod(0o644)
    with pytest.raises(PermissionError, match="accessible"):
        KeyRing.load_or_create(keydir)


def test_refuses_a_directory_open_to_others(keydir: Path) -> None:
    keydir.mkdir(parents=True, mode=0o755)
    keydir.chmod(0o755)
    with pytest.raises(PermissionError, match="accessible"):
        KeyRing.load_or_create(keydir)


def test_refuses_a_key_file_named_after_another_kid(keydir: Path) -> None:
    kid = KeyRing.load_or_create(keydir).active.kid
    (keydir / f"{kid}.pem").rename(keydir / "0123456789abcdef.pem")
    with pytest.raises(ValueError, match="kid"):
        KeyRing.load_or_create(keydir)
