"""Model files for tests, made once per session: YOLOv8n exported, the Qwen GGUF and the
Whisper base folder assembled."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.models.files import export_yolov8n
from sentinel.models.gguf import assemble_qwen_gguf
from sentinel.models.whisper import assemble_whisper


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported, sha256-recorded YOLOv8n ONNX file (export takes ~5 s)."""
    return export_yolov8n(tmp_path_factory.mktemp("models") / "yolov8n.onnx")


@pytest.fixture(scope="session")
def qwen_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The assembled, sha256-recorded Qwen GGUF of the embedded LLM (assembly ~2 s)."""
    return assemble_qwen_gguf(tmp_path_factory.mktemp("llm") / "qwen.gguf")


@pytest.fixture(scope="session")
def whisper_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The assembled, sha256-checked Whisper base folder (assembly ~1 s)."""
    return assemble_whisper(tmp_path_factory.mktemp("whisper") / "whisper-base")
