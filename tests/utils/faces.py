"""Real face photos that Debian's ``opencv-doc`` ships (installed by ``make install``).

- ``SAME_A`` and ``SAME_B``: two different photos of one woman (the cascade-classifier
  tutorial's Haar and LBP results: another pose, place and light);
- ``MESSI``: ``messi5.jpg``, another person;
- ``LENA``: the CMake tutorial's photo of Lena, a third person;
- ``TWO_FACES``: a tutorial figure with Lena twice side by side (before and after a
  contrast change);
- ``NO_FACE``: ``fruits.jpg``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from sentinel.config import FaceSettings
from sentinel.models.faces import FaceAnalyzer
from sentinel.retention.face_index import FaceIndex
from sentinel.retention.faces import FaceVault
from sentinel.store.face_repo import FaceRepository
from sentinel.store.objects import ObjectStore

DOC = Path("/usr/share/doc/opencv-doc")
HTML = DOC / "opencv4" / "html"
DATA = DOC / "examples" / "data"

SAME_A = HTML / "Cascade_Classifier_Tutorial_Result_Haar.jpg"
SAME_B = HTML / "Cascade_Classifier_Tutorial_Result_LBP.jpg"
MESSI = DATA / "messi5.jpg"
LENA = HTML / "GCC_CMake_Example_Tutorial.jpg"
TWO_FACES = HTML / "Basic_Linear_Transform_Tutorial_Result_big.jpg"
NO_FACE = DATA / "fruits.jpg"
PHOTOS = (SAME_A, SAME_B, MESSI, LENA, TWO_FACES, NO_FACE)

# A fixed face key for tests that find SAME_A's face with SAME_B: under a random key the two
# land within the default probe radius (3) in 95% of draws only, so such a test would fail one
# run in twenty. Under this key their bucket codes are equal (Hamming distance 0).
FACE_TEST_KEY = hashlib.sha256(b"sentinel-test-faces-1").digest()


def sealed_face_index(engine: Engine, objects: ObjectStore, analyzer: FaceAnalyzer) -> FaceIndex:
    """A face index over ``engine`` and ``objects``, on, under ``FACE_TEST_KEY``."""
    vault = FaceVault(FACE_TEST_KEY)
    return FaceIndex(FaceRepository(engine), vault, analyzer, objects, FaceSettings(enabled=True))


def photo(path: Path) -> bytes:
    """The bytes of a photo; fails the test with how to install it when missing."""
    if not path.is_file():
        pytest.fail(f"{path} is missing: `apt-get install opencv-doc` (make install does it)")
    return path.read_bytes()


def face_clip(dest: Path, *, seconds: float = 2.0, fps: int = 10, shift_px: int = 2) -> Path:
    """An H.264 MP4 of ``messi5.jpg`` drifting right by ``shift_px`` per frame (a real face
    that moves, so held boxes between detections are put to the test)."""
    import io
    from fractions import Fraction

    import av
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(photo(MESSI))).convert("RGB"), dtype=np.uint8)
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    frames = round(seconds * fps)
    canvas_w = w + shift_px * frames + (shift_px * frames) % 2
    dest.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = canvas_w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18", "g": str(2 * fps)}
        for i in range(frames):
            canvas = np.zeros((h, canvas_w, 3), dtype=np.uint8)
            canvas[:, i * shift_px : i * shift_px + w] = rgb[:h, :w]
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest
