"""Faces: dlib's HOG detector, 5-point landmarks and 128-d embeddings, offline and verified.

The model files ship in the PyPI package ``face-recognition-models`` (0.3.0); dlib itself comes
from ``dlib-bin`` (a prebuilt wheel). That package's own path helpers import ``pkg_resources``,
which new setuptools no longer provides, so the files are located without importing it and
each is checked against its pinned sha256 before dlib reads it.

An embedding is dlib's ``face_recognition_model_v1`` descriptor: two photos of one person are
usually within a Euclidean distance of 0.6 (dlib's threshold, 99.38% on LFW).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sentinel.models.files import ModelFileError, sha256_file

__all__ = [
    "EMBEDDING_DIM",
    "FACE_MODEL_SHA256",
    "FaceAnalyzer",
    "FoundFace",
    "face_model_paths",
]

EMBEDDING_DIM = 128
FACE_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
FACE_MODEL_SHA256 = {
    SHAPE_PREDICTOR: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    RECOGNITION_MODEL: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}


def face_model_paths() -> dict[str, Path]:
    """The verified model files of ``face-recognition-models``, by file name.

    Raises:
        ModelFileError: the package is missing, a file is missing, or a sha256 differs.
    """
    spec = importlib.util.find_spec(FACE_PACKAGE)  # located, never imported (pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "package face-recognition-models is not installed: `pip install "
            "face-recognition-models dlib-bin` (the project's dependencies include both)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "models"
    paths: dict[str, Path] = {}
    for name, expected in FACE_MODEL_SHA256.items():
        path = root / name
        if not path.is_file():
            raise ModelFileError(f"{path} is missing from face-recognition-models")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFileError(f"refusing {path}: its sha256 is {actual}, expected {expected}")
        paths[name] = path
    return paths


@dataclass(frozen=True, slots=True)
class FoundFace:
    """One face: its box in the image's pixels (x1, y1, x2, y2) and its 128-d embedding."""

    box: tuple[int, int, int, int]
    embedding: NDArray[np.float32]


class FaceAnalyzer:
    """Finds faces in an RGB image (HOG) and embeds each (ResNet, 128-d).

    The models load on first use (about 30 MB, a second). dlib's objects are not safe to share
    between threads, so calls are serialised by a lock.

    Args:
        upsample: How many times HOG doubles the image first; 1 finds faces from about 40 px.
    """

    def __init__(self, *, upsample: int = 1) -> None:
        if upsample not in (0, 1, 2):
            raise ValueError(f"upsample must be 0, 1 or 2, but got {upsample}")
        self.upsample = upsample
        self._lock = threading.Lock()
        self._models: tuple[Any, Any, Any] | None = None

    def _load(self) -> tuple[Any, Any, Any]:
        if self._models is None:
            import dlib  # heavy native module; only here

            paths = face_model_paths()
            self._models = (
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(str(paths[SHAPE_PREDICTOR])),
                dlib.face_recognition_model_v1(str(paths[RECOGNITION_MODEL])),
            )
        return self._models

    def detect(self, rgb: NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
        """The face boxes (x1, y1, x2, y2), clipped to the image."""
        image = _check_rgb(rgb)
        with self._lock:
            detector, _, _ = self._load()
            rects = detector(image, self.upsample)
        return [_clip(r, image.shape) for r in rects]

    def analyze(self, rgb: NDArray[np.uint8]) -> list[FoundFace]:
        """Every face of the image with its embedding, left to right."""
        image = _check_rgb(rgb)
        with self._lock:
            detector, predictor, recognizer = self._load()
            rects = list(detector(image, self.upsample))
            faces = [
                FoundFace(
                    _clip(r, image.shape),
                    np.asarray(
                        recognizer.compute_face_descriptor(image, predictor(image, r)),
                        dtype=np.float32,
                    ),
                )
                for r in rects
            ]
        return sorted(faces, key=lambda f: f.box[0])


def _check_rgb(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"a face image must be an RGB uint8 array of shape (H, W, 3), but got "
            f"{rgb.dtype} {rgb.shape}"
        )
    return np.ascontiguousarray(rgb)


def _clip(rect: Any, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[0], shape[1]
    return (
        max(0, int(rect.left())),
        max(0, int(rect.top())),
        min(w, int(rect.right()) + 1),
        min(h, int(rect.bottom()) + 1),
    )
