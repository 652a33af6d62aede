"""Random access to stored video (decord, PyAV where decord cannot open it): the frames asked
for, in order, identical to a sequential decode; a damaged or truncated file yields what
decodes and counts the rest; a file nothing can open raises UnreadableVideo."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from sentinel.video.frames import UnreadableVideo, _open_pyav, open_frames
from tests.utils.media import corrupt_file, h264_clip, mp4_media_span, sample_video, truncated_copy


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("frames"), seconds=4)


def sequential(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in indices:
                out[i] = frame.to_ndarray(format="rgb24")
            if len(out) == len(indices):
                break
    return out


def test_random_access_matches_a_sequential_decode(clip: Path) -> None:
    reader = open_frames(clip.read_bytes(), name="clip")  # bytes, as the object store has them
    assert reader.backend == "decord"
    assert len(reader) == 40 and reader.fps == pytest.approx(10.0, rel=1e-3)
    assert reader.times[0] == 0.0 and reader.times[10] == pytest.approx(1.0)
    got = dict(reader.read([33, 2, 17, 2]))
    assert sorted(got) == [2, 17, 33]
    want = sequential(clip, {2, 17, 33})
    for i, frame in got.items():
        assert frame.shape == (576, 768, 3) and frame.dtype == np.uint8
        assert np.abs(frame.astype(int) - want[i]).mean() < 1.0
    with pytest.raises(IndexError):
        list(reader.read([40]))


def test_the_sample_video_by_index() -> None:
    reader = open_frames(sample_video())
    assert len(reader) == 795
    ((index, frame),) = reader.read([399])
    want = sequential(sample_video(), {399})[399]
    assert index == 399 and np.abs(frame.astype(int) - want).mean() < 1.0


def test_pyav_fallback_reads_the_same_frames(clip: Path) -> None:
    reader = _open_pyav(clip, "clip")
    assert reader.backend == "pyav" and len(reader) == 40
    got = dict(reader.read([5, 30]))
    decoded = dict(open_frames(clip).read([5, 30]))
    assert sorted(got) == [5, 30]
    for i in got:
        assert np.abs(got[i].astype(int) - decoded[i]).mean() < 1.0
    assert dict(reader.read([6])).keys() == {6}  # reopens its source for every read


def test_a_damaged_file_is_read_where_it_decodes(clip: Path, tmp_path: Path) -> None:
    start, end = mp4_media_span(clip)
    data = bytearray(clip.read_bytes())
    middle = (start + end) // 2
    data[middle : middle + 30_000] = bytes(30_000)  # zeroed: broken NAL units
    reader = open_frames(bytes(data), name="damaged")
    got = [i for i, _ in reader.read(range(0, 40, 2))]
    assert 0 < len(got) < 20
    assert reader.skipped == 20 - len(got)
    assert got[0] == 0  # the frames before the damage decode


def test_a_truncated_file_and_junk(clip: Path, tmp_path: Path) -> None:
    short = truncated_copy(clip, tmp_path / "short.mp4", 0.5)
    reader = open_frames(short)
    got = [i for i, _ in reader.read(range(len(reader)))]
    assert got and reader.skipped == len(reader) - len(got)
    with pytest.raises(UnreadableVideo):
        open_frames(corrupt_file(tmp_path / "junk.mp4"))
    with pytest.raises(UnreadableVideo):
        open_frames(b"")
