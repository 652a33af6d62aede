"""Camera credentials at rest: sealed in the row, redacted for the API, unsealed for the actor."""

from __future__ import annotations

import os

import pytest

from sentinel.gateway.secretbox import SecretBox, SecretError
from sentinel.store.camera_secrets import SEALED_KEY, public_camera, seal_camera, unseal_camera

BOX = SecretBox(os.urandom(32))


def test_password_is_sealed_and_redacted() -> None:
    cfg = {"id": "door", "source": "rtsp://admin:hunter2@127.0.0.1:8554/cam", "detect_fps": 5}
    stored = seal_camera(cfg, BOX)
    assert "hunter2" not in repr(stored)
    assert stored["source"] == "rtsp://admin:***@127.0.0.1:8554/cam"
    assert public_camera(stored) == {**cfg, "source": stored["source"]}
    assert unseal_camera(stored, BOX) == cfg


def test_plain_source_is_stored_as_is() -> None:
    cfg = {"id": "file", "source": "/videos/a.mp4"}
    assert seal_camera(cfg, BOX) == cfg
    assert unseal_camera(cfg, BOX) == cfg


@pytest.mark.parametrize("attack", ["other-key", "moved-row", "tampered"])
def test_sealed_source_resists_tampering(attack: str) -> None:
    stored = seal_camera({"id": "door", "source": "rtsp://u:p@127.0.0.1/x"}, BOX)
    box = BOX
    if attack == "other-key":
        box = SecretBox(os.urandom(32))
    elif attack == "moved-row":
        stored = {**stored, "id": "other-camera"}
    else:
        token = str(stored[SEALED_KEY])
        stored = {**stored, SEALED_KEY: token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")}
    with pytest.raises(SecretError):
        unseal_camera(stored, box)
