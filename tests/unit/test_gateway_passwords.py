"""Password policy and argon2id hashing."""

from __future__ import annotations

import unicodedata

import pytest

from sentinel.gateway.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    Passwords,
    WeakPassword,
    validate_password,
)

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
CHEAP_PREFIX = "$argon2id$v=19$m=8,t=1,p=1$"


@pytest.fixture(scope="module")
def pw() -> Passwords:
    return Passwords(**CHEAP)


@pytest.mark.parametrize(
    ("password", "username", "rule"),
    [
        ("", None, "at least"),
        ("short", None, "at least"),
        ("a1b2c3d4e5f", None, "at least"),  # 11 characters
        ("x" * (MAX_PASSWORD_LENGTH + 1) + "y", None, "at most"),
        ("aaaaaaaaaaaaaaaa", None, "single character"),
        ("            ", None, "single character"),
        ("\uff41" * 12, None, "single character"),  # full-width "a", NFKC-folds to "a"
        ("alice.operator", "alice.operator", "username"),
        ("ALICE.OPERATOR", "alice.operator", "username"),
        ("my-name-is-Alice.Operator!", "alice.operator", "username"),
        ("bobby-tables-2024", "bobby", "username"),
    ],
)
def test_weak_passwords_are_rejected(password: str, username: str | None, rule: str) -> None:
    with pytest.raises(WeakPassword, match=rule) as info:
        validate_password(password, username=username)
    assert isinstance(info.value, ValueError)
    if password:
        assert password not in str(info.value)  # the message never echoes the password


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("correct horse battery staple", None),
        ("x" * (MIN_PASSWORD_LENGTH - 1) + "y", None),
        ("totally-normal-phrase", "al"),  # usernames under 3 chars are not searched for
        ("ümlauts & ñ are fine 🙂", "carol"),
        ("ab" * (MAX_PASSWORD_LENGTH // 2), "dave"),
    ],
)
def test_good_passwords_pass(password: str, username: str | None) -> None:
    validate_password(password, username=username)


def test_hash_and_verify(pw: Passwords) -> None:
    h = pw.hash("correct horse battery staple")
    assert h.startswith(CHEAP_PREFIX)
    assert pw.verify(h, "correct horse battery staple")
    assert not pw.verify(h, "correct horse battery stapl")
    assert not pw.verify(h, "")
    assert pw.hash("correct horse battery staple") != h  # fresh salt every time


@pytest.mark.parametrize(
    "stored",
    ["", "not-a-hash", "$argon2id$v=19$m=8,t=1,p=1$garbage", "$2b$12$" + "a" * 53, "\x00"],
)
def test_verify_never_raises_on_bad_hashes(pw: Passwords, stored: str) -> None:
    assert pw.verify(stored, "whatever password") is False


def test_unicode_forms_verify_alike(pw: Passwords) -> None:
    composed = unicodedata.normalize("NFC", "Café crème brûlée")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert pw.verify(pw.hash(composed), decomposed)


def test_oversized_password_is_refused_without_raising(pw: Passwords) -> None:
    h = pw.hash("correct horse battery staple")
    assert pw.verify(h, "x" * 100_000) is False
    with pytest.raises(WeakPassword):
        pw.hash("x" * 100_000)


def test_dummy_hash_costs_what_a_real_hash_costs(pw: Passwords) -> None:
    # Same parameters => same verification work, so "unknown user" and "wrong password"
    # cannot be told apart by timing.
    assert pw.dummy_hash.startswith(CHEAP_PREFIX)
    assert pw.verify_dummy("anything at all") is False
    assert pw.verify_dummy("x" * 100_000) is False


def test_needs_rehash(pw: Passwords) -> None:
    cheap_hash = pw.hash("correct horse battery staple")
    assert not pw.needs_rehash(cheap_hash)
    stronger = Passwords(time_cost=2, memory_cost=16, parallelism=1)
    assert stronger.needs_rehash(cheap_hash)
    assert stronger.verify(cheap_hash, "correct horse battery staple")  # still verifies
    assert pw.needs_rehash("garbage")


def test_default_profile_is_rfc9106() -> None:
    assert Passwords().dummy_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


@pytest.mark.parametrize(
    "params",
    [
        {"time_cost": 0, "memory_cost": 8, "parallelism": 1},
        {"time_cost": 1, "memory_cost": 4, "parallelism": 1},
        {"time_cost": 1, "memory_cost": 8, "parallelism": 0},
    ],
)
def test_bad_parameters_are_refused(params: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="argon2 needs"):
        Passwords(**params)
