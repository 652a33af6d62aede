"""The detector model for tests: the bundled YOLOv8n exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.serve.models import export_yolov8n


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported, sha256-recorded YOLOv8n ONNX file (export takes ~5 s)."""
    return export_yolov8n(tmp_path_factory.mktemp("models") / "yolov8n.onnx")
