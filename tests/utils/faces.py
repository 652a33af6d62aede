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


def photo(path: Path) -> bytes:
    """The bytes of a photo; fails the test with how to install it when missing."""
    if not path.is_file():
        pytest.fail(f"{path} is missing: `apt-get install opencv-doc` (make install does it)")
    return path.read_bytes()
