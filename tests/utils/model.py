"""Model files for tests, made once per session: YOLOv8n exported, the Qwen GGUF and the
Whisper base folder assembled; a blind variant of YOLOv8n for the canary's guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentinel.models.files import export_yolov8n, write_digest
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


def blind_detector(src: Path, dest: Path) -> Path:
    """``src`` (a YOLOv8 ONNX export, output ``(batch, 4 + classes, anchors)``) with every
    class score multiplied by 0, and its sha256 file: a challenger that runs the same network
    at the same cost as the champion and finds nothing."""
    import onnx  # the export extra: only where a test makes one
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    output = graph.output[0]
    rows = output.type.tensor_type.shape.dim[1].dim_value
    if rows <= 4:
        raise ValueError(f"{src}: expected (batch, 4 + classes, anchors), got {rows} rows")
    raw = f"{output.name}_scored"
    for node in graph.node:
        node.output[:] = [raw if name == output.name else name for name in node.output]
    keep = np.zeros((1, rows, 1), dtype=np.float32)
    keep[0, :4, 0] = 1.0  # the boxes stay, the scores go
    graph.initializer.append(numpy_helper.from_array(keep, "blind_scores"))
    graph.node.append(helper.make_node("Mul", [raw, "blind_scores"], [output.name]))
    onnx.checker.check_model(model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest))
    write_digest(dest)
    return dest
