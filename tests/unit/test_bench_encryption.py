"""The encryption benchmark runs end to end (tiny sizes) and times every operation."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import encryption as bench


def test_measure_times_every_operation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "OBJECTS", 2)
    monkeypatch.setattr(bench, "OBJECT_MB", 1)
    monkeypatch.setattr(bench, "LARGE_MB", 2)
    times = bench.measure(tmp_path, rounds=1)
    assert set(times) == {
        "put bare",
        "put enc",
        "get bare",
        "get enc",
        "range bare",
        "range enc",
        "whole enc",
    }
    assert all(t > 0 for t in times.values())
    stored = sorted(p.stat().st_size for p in (tmp_path / "enc").rglob("*.mp4"))
    assert stored[0] > 1 << 20  # the encrypted store holds ciphertext plus headers and tags
