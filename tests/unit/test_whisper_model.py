"""The speech-to-text model: assembled from its two packages, checked by sha256 at assembly and
before every load, refused when a byte differs; `sentinel models init` assembles it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sentinel.config import Settings
from sentinel.models import whisper
from sentinel.models.files import ModelFileError, sha256_file
from sentinel.models.whisper import (
    SUMS_FILE,
    WHISPER_FILES,
    SpeechRecognizer,
    assemble_whisper,
    find_whisper_parts,
    verify_whisper,
)


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture
def copy(whisper_model: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "whisper-base"
    shutil.copytree(whisper_model, dest)
    return dest


def test_assembled_folder_holds_the_pinned_files(whisper_model: Path) -> None:
    parts, _ = find_whisper_parts()
    assert [p.name for p in parts] == ["model.bin.part1", "model.bin.part2"]
    assert (whisper_model / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    for name, digest in WHISPER_FILES.items():
        assert sha256_file(whisper_model / name) == digest
    verify_whisper(whisper_model, pinned=True)


def test_assembly_is_idempotent_and_force_rebuilds(copy: Path) -> None:
    before = (copy / "model.bin").stat().st_mtime_ns
    assemble_whisper(copy)
    assert (copy / "model.bin").stat().st_mtime_ns == before
    assemble_whisper(copy, force=True)
    assert (copy / "model.bin").stat().st_mtime_ns != before
    verify_whisper(copy, pinned=True)


def test_assembly_refuses_a_tampered_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, others = find_whisper_parts()
    bad = tmp_path / "model.bin.part2"
    shutil.copy(parts[1], bad)
    _flip_byte(bad, 1000)
    monkeypatch.setattr(whisper, "find_whisper_parts", lambda: ([parts[0], bad], others))
    dest = tmp_path / "models" / "whisper-base"
    with pytest.raises(ModelFileError, match=r"model\.bin is [0-9a-f]{64}, expected"):
        assemble_whisper(dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary folder left behind


@pytest.mark.parametrize("name", ["model.bin", "config.json", "vocabulary.txt"])
def test_a_flipped_byte_is_refused_before_loading(copy: Path, name: str) -> None:
    _flip_byte(copy / name, (copy / name).stat().st_size // 2)
    with pytest.raises(ModelFileError, match=f"{name}: its sha256 is"):
        verify_whisper(copy)
    with pytest.raises(ModelFileError, match=name):
        SpeechRecognizer(copy)
    # The cheap check (recorded sums) still passes, so assembly must not skip a real check:
    # loading re-hashes, which is what refused it above.


def test_missing_or_foreign_sums_are_refused(copy: Path) -> None:
    sums = (copy / SUMS_FILE).read_text()
    (copy / SUMS_FILE).unlink()
    with pytest.raises(ModelFileError, match="missing or empty"):
        verify_whisper(copy)
    # A self-consistent folder that is not the bundled model: accepted only when not pinned.
    (copy / "extra.txt").write_text("x")
    (copy / SUMS_FILE).write_text(sums + f"{sha256_file(copy / 'extra.txt')}  extra.txt\n")
    verify_whisper(copy)
    with pytest.raises(ModelFileError, match="does not record the bundled"):
        verify_whisper(copy, pinned=True)
    (copy / SUMS_FILE).write_text(f"{WHISPER_FILES['config.json']}  config.json\n")
    with pytest.raises(ModelFileError, match=r"does not list model\.bin"):
        verify_whisper(copy)
    with pytest.raises(ModelFileError, match="does not exist"):
        verify_whisper(copy / "nowhere")


def test_recognizer_refuses_samples_of_the_wrong_shape(whisper_model: Path) -> None:
    model = SpeechRecognizer(whisper_model, pinned=True, threads=1)
    with pytest.raises(ValueError, match="1-d float32"):
        model.transcribe(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="1-d float32"):
        model.transcribe(np.zeros(16000, dtype=np.int16))
    silent = model.transcribe(np.zeros(16000, dtype=np.float32))
    assert silent.text == "" and silent.speech_s == 0.0  # VAD: nothing decoded


def test_platform_refuses_to_start_without_the_model(tmp_path: Path, onnx_model: Path) -> None:
    from sentinel.platform import verify_models

    settings = Settings(
        data_dir=tmp_path, detector={"model_path": onnx_model}, agent={"enabled": False}
    )
    with pytest.raises(ModelFileError, match="whisper-base does not exist"):
        verify_models(settings)
    verify_models(
        settings.model_copy(update={"voice": settings.voice.model_copy(update={"enabled": False})})
    )


def test_models_init_assembles_the_whisper_folder(
    tmp_path: Path, onnx_model: Path, qwen_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel.cli import main

    models = tmp_path / "models"
    models.mkdir()
    for f in (onnx_model, onnx_model.with_name(onnx_model.name + ".sha256")):
        shutil.copy(f, models / f.name)  # already exported: init keeps it
    gguf = models / "qwen2.5-coder-0.5b-q4_k_m.gguf"
    for f in (qwen_gguf, qwen_gguf.with_name(qwen_gguf.name + ".sha256")):
        shutil.copy(f, gguf.with_name(gguf.name + f.name.removeprefix(qwen_gguf.name)))
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["models", "init"])
    assert result.exit_code == 0, result.output
    assert f"speech-to-text model ready: {models / 'whisper-base'}" in result.output
    verify_whisper(models / "whisper-base", pinned=True)
