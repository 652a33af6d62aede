"""The MiniLM embedder: the packaged folder is checked file by file before anything loads,
and it embeds offline into unit vectors that place related texts closer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sentinel.models.embedder import (
    EMBED_DIM,
    MINILM_FILES,
    TextEmbedder,
    minilm_dir,
    verify_minilm,
)
from sentinel.models.files import ModelFileError


def _small_copy(tmp_path: Path) -> Path:
    """The model folder without its weights (those are checked by the real-folder test)."""
    src = minilm_dir()
    dst = tmp_path / "model"
    for rel in MINILM_FILES:
        if rel == "model.safetensors":
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst / rel)
    return dst


def test_the_packaged_folder_passes() -> None:
    verify_minilm(minilm_dir())


def test_a_changed_or_missing_file_is_refused(tmp_path: Path) -> None:
    folder = _small_copy(tmp_path)
    pins = {k: v for k, v in MINILM_FILES.items() if k != "model.safetensors"}
    verify_minilm(folder, pins)
    vocab = folder / "vocab.txt"
    vocab.write_bytes(vocab.read_bytes().replace(b"[UNK]", b"[UNX]", 1))
    with pytest.raises(ModelFileError, match=r"vocab\.txt: its sha256 is [0-9a-f]{64}, expected"):
        verify_minilm(folder, pins)
    vocab.unlink()
    with pytest.raises(ModelFileError, match=r"vocab\.txt is missing"):
        verify_minilm(folder, pins)
    with pytest.raises(ModelFileError):
        TextEmbedder(folder)  # refused before sentence-transformers is imported


def test_embeds_offline_into_unit_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = TextEmbedder(threads=1)
    texts = [
        "person wearing red top walking left in the car park",
        "a man in a red jacket near the parking lot",
        "white truck standing still at the loading dock",
    ]
    vectors = model.embed(texts)
    assert vectors.shape == (3, EMBED_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sim = vectors @ vectors.T
    assert sim[0, 1] > sim[0, 2] + 0.1
    again = model.embed(texts[:1])
    np.testing.assert_allclose(again[0], vectors[0], atol=1e-5)  # batch-independent
    assert model.embed([]).shape == (0, EMBED_DIM)
    with pytest.raises(ValueError):
        model.embed(["x" * 9000])
