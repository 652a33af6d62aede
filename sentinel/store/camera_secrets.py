"""Camera credentials at rest: a source URL with a password is stored sealed (AES-256-GCM).

The row keeps the redacted URL in ``source`` (what the API shows) and the sealed original in
``source_sealed``; only the supervisor, which hands the camera actor its real source, unseals
it. The camera id is the AEAD's associated data, so a sealed URL moved onto another camera's
row does not decrypt.
"""

from __future__ import annotations

from typing import Any

from sentinel.domain.sources import redact_source
from sentinel.gateway.secretbox import SecretBox

SEALED_KEY = "source_sealed"


def seal_camera(config: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """``config`` ready to store: the source redacted, the original sealed when it differs."""
    source = str(config["source"])
    redacted = redact_source(source)
    if redacted == source:
        return {k: v for k, v in config.items() if k != SEALED_KEY}
    sealed = box.encrypt(source, aad=str(config["id"]).encode())
    return {**config, "source": redacted, SEALED_KEY: sealed}


def unseal_camera(config: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The camera's real config (for the actor that opens the source)."""
    if SEALED_KEY not in config:
        return dict(config)
    source = box.decrypt(str(config[SEALED_KEY]), aad=str(config["id"]).encode())
    return {**{k: v for k, v in config.items() if k != SEALED_KEY}, "source": source}


def public_camera(config: dict[str, Any]) -> dict[str, Any]:
    """The stored config without the sealed secret (its source is already redacted)."""
    return {k: v for k, v in config.items() if k != SEALED_KEY}
