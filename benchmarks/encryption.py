"""Media encrypted at rest: what the AES-256-GCM envelope costs on the local object store.

Side by side in one run, interleaved rounds (rotating order), medians reported:

* ``put``: ``OBJECTS`` random objects of ``OBJECT_MB`` MiB (about a 10 s segment at 3 Mbit/s)
  stored in a :class:`LocalObjectStore` (temp file, fsync, rename) bare vs. through an
  :class:`EncryptedObjectStore` (64 KiB chunks) over another folder;
* ``get``: the same objects read back, bare vs. decrypted;
* ``range``: a 64 KiB range from the middle of one ``LARGE_MB`` MiB object (a long export
  being seeked), bare vs. encrypted (header + the two chunks it spans); and what a whole-object
  decrypt would cost instead (``get`` of the encrypted object), the case chunking avoids.

Figures are MB/s of plaintext (ranges: ms per read) and the encrypted/bare ratio.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import median
from sentinel.store.envelope import EncryptedObjectStore, MasterKeys
from sentinel.store.objects import LocalObjectStore, ObjectStore

OBJECTS = 8
OBJECT_MB = 4
LARGE_MB = 64
RANGE_BYTES = 64 * 1024
ROUNDS = 5


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _puts(store: ObjectStore, blobs: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        for i, blob in enumerate(blobs):
            store.put(f"recordings/bench/{i}.mp4", blob, "video/mp4")

    return run


def _gets(store: ObjectStore, n: int) -> Callable[[], None]:
    def run() -> None:
        for i in range(n):
            store.get(f"recordings/bench/{i}.mp4")

    return run


def measure(root: Path, rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds of each operation, bare and encrypted (see the module docstring)."""
    bare = LocalObjectStore(root / "bare")
    enc = EncryptedObjectStore(LocalObjectStore(root / "enc"), MasterKeys([os.urandom(32)]))
    blobs = [os.urandom(OBJECT_MB << 20) for _ in range(OBJECTS)]
    large = os.urandom(LARGE_MB << 20)
    for store in (bare, enc):
        store.put("exports/bench/large.mp4", large)
    middle = (LARGE_MB << 20) // 2 - RANGE_BYTES // 2  # spans two 64 KiB chunks
    assert (
        enc.get_range("exports/bench/large.mp4", middle, middle + RANGE_BYTES)
        == (large[middle : middle + RANGE_BYTES])
    )
    ops: dict[str, Callable[[], object]] = {
        "put bare": _puts(bare, blobs),
        "put enc": _puts(enc, blobs),
        "get bare": _gets(bare, OBJECTS),
        "get enc": _gets(enc, OBJECTS),
        "range bare": lambda: bare.get_range(
            "exports/bench/large.mp4", middle, middle + RANGE_BYTES
        ),
        "range enc": lambda: enc.get_range("exports/bench/large.mp4", middle, middle + RANGE_BYTES),
        "whole enc": lambda: enc.get("exports/bench/large.mp4"),
    }
    names = list(ops)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_timed(ops[name]))
    return {name: median(values) for name, values in times.items()}


def run(_model: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-enc-") as tmp:
        t = measure(Path(tmp))
    mb = OBJECTS * OBJECT_MB
    print(f"encryption at rest: {OBJECTS} x {OBJECT_MB} MiB objects, local store, {ROUNDS} rounds")
    for op in ("put", "get"):
        bare, enc = mb / t[f"{op} bare"], mb / t[f"{op} enc"]
        print(
            f"  {op}: bare {bare:7.0f} MB/s, encrypted {enc:7.0f} MB/s, "
            f"encrypted/bare throughput {enc / bare:.2f}"
        )
    rb, re, whole = t["range bare"] * 1e3, t["range enc"] * 1e3, t["whole enc"] * 1e3
    print(
        f"  64 KiB range of a {LARGE_MB} MiB object: bare {rb:.2f} ms, encrypted {re:.2f} ms "
        f"(x{re / rb:.1f}); decrypting the whole object instead {whole:.0f} ms (x{whole / re:.0f} "
        "the chunked read)"
    )


if __name__ == "__main__":
    run()
