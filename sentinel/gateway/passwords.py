"""Password policy and argon2id hashing.

Passwords are normalised to Unicode NFKC before hashing and checking, so the same password typed
on two keyboards (composed vs. decomposed accents, full-width digits) verifies on both, as NIST SP
800-63B recommends.
"""

from __future__ import annotations

import contextlib
import secrets
import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "Passwords", "WeakPassword"]

MIN_PASSWORD_LENGTH = 12
# The upper bound is not about storage (argon2 pre-hashes its input) but about refusing absurd
# request bodies early and keeping every verification equally cheap to compute.
MAX_PASSWORD_LENGTH = 1024
# Usernames shorter than this are not searched for inside passwords: "al" would forbid far too
# many good passwords while adding almost nothing to an attacker's dictionary.
_MIN_USERNAME_FOR_CONTAINS = 3


class WeakPassword(ValueError):  # noqa: N818 - the name is part of the gateway API
    """A password that the policy refuses; the message says which rule it broke."""


def _normalise(pw: str) -> str:
    return unicodedata.normalize("NFKC", pw)


def validate_password(pw: str, *, username: str | None = None) -> None:
    """Checks a new password against the policy.

    The policy follows NIST SP 800-63B: length matters, composition rules do not. Passwords may
    contain any character, spaces included.

    Args:
        pw: The candidate password.
        username: The account's name; the password may neither equal nor contain it.

    Raises:
        WeakPassword: The password breaks a rule. The message names the rule, never the password.
    """
    norm = _normalise(pw)
    if len(norm) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(norm) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    if len(set(norm)) == 1:
        raise WeakPassword("password must not repeat a single character")
    if username:
        user = _normalise(username).casefold()
        folded = norm.casefold()
        if folded == user or (len(user) >= _MIN_USERNAME_FOR_CONTAINS and user in folded):
            raise WeakPassword("password must not contain the username")


class Passwords:
    """Hashes and verifies passwords with argon2id.

    The defaults are RFC 9106's second recommended profile (t=3, 64 MiB, p=4): about 50 ms per
    hash on a server core, which makes offline guessing costly while keeping logins fast. Tests
    pass a cheap profile through the constructor; production code should keep the defaults.

    Args:
        time_cost: argon2 iterations.
        memory_cost: Memory in KiB.
        parallelism: Lanes.
    """

    def __init__(
        self, *, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4
    ) -> None:
        if time_cost < 1 or parallelism < 1 or memory_cost < 8 * parallelism:
            raise ValueError(
                "argon2 needs time_cost >= 1, parallelism >= 1 and memory_cost >= 8 * parallelism"
                f" KiB, but got time_cost={time_cost}, memory_cost={memory_cost},"
                f" parallelism={parallelism}"
            )
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # A hash of a random password made with *this* instance's parameters. Verifying against
        # it costs exactly what verifying a real user's hash costs, so "no such user" and "wrong
        # password" take the same time and an attacker cannot enumerate accounts by timing.
        # A constant baked into the source would not do: it would carry fixed parameters that
        # drift from the configured ones and reopen the timing gap.
        self.dummy_hash: str = self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, pw: str) -> str:
        """Returns the PHC-format argon2id hash of ``pw`` with a fresh random salt."""
        if len(pw) > MAX_PASSWORD_LENGTH * 4:
            # Validation normally stops these; the check keeps ``hash`` safe on its own.
            raise WeakPassword(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
        return self._hasher.hash(_normalise(pw))

    def verify(self, stored_hash: str, pw: str) -> bool:
        """Checks ``pw`` against ``stored_hash``.

        Returns:
            True on a match; False on a mismatch, a malformed or unsupported hash, or an oversized
            password. It never raises for a wrong password, so callers cannot leak the reason.
        """
        if len(pw) > MAX_PASSWORD_LENGTH * 4:
            # Burn the same time as a real check: a fast reject would be a measurable signal.
            self.verify_dummy("")
            return False
        try:
            return self._hasher.verify(stored_hash, _normalise(pw))
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, pw: str) -> bool:
        """Spends the time of one verification when the account does not exist.

        Call this on the "unknown user" path of a login so that it is indistinguishable by timing
        from the "wrong password" path. Always returns False.
        """
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self.dummy_hash, _normalise(pw[: MAX_PASSWORD_LENGTH * 4]))
        return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether ``stored_hash`` was made with other parameters (rehash after a good login).

        A hash that cannot be parsed also needs replacing, so it answers True.
        """
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True
