"""Datasets for the learning loop's tests: frames of the sample video with the PETS09 boxes.

Frames come from ``vtest.avi`` (frame N of the ground truth is the N-th decoded frame), boxes
from ``benchmarks/data/pets09-s2l1-gt-0001-0400.txt`` (frames 1-400 only; 401-795 are the
held-out half and never used here). A dataset is written in the contract's layout
(``sentinel.train.datasets``) into an object store and registered as a ready version in the
database (``DatasetRepo``: reserve, then finish with the manifest's sha256), as the dataset
builder does: training finds, locks and verifies a version through its row.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sentinel.domain.annotation import LabeledBox
from sentinel.store.dataset_repo import DatasetRepo, DatasetVersion
from sentinel.store.objects import ObjectStore
from sentinel.train.datasets import (
    DatasetManifest,
    ManifestItem,
    image_key,
    label_key,
    manifest_key,
    sha256_hex,
    version_prefix,
    yolo_lines,
)
from tests.utils.media import sample_video

GT_FILE = (
    Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "pets09-s2l1-gt-0001-0400.txt"
)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FPS = 10.0
WIDTH, HEIGHT = 768, 576


@cache
def ground_truth() -> dict[int, list[LabeledBox]]:
    """Person boxes per frame number (1-400), ``flag`` 0 rows skipped, clipped to the frame."""
    boxes: dict[int, list[LabeledBox]] = defaultdict(list)
    for line in GT_FILE.read_text().splitlines():
        fields = [float(f) for f in line.split(",")]
        frame, x, y, w, h, flag = int(fields[0]), *fields[2:6], fields[6]
        if flag == 0 or frame > 400:
            continue
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(float(WIDTH), x + w), min(float(HEIGHT), y + h)
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            boxes[frame].append(LabeledBox("person", x1, y1, x2, y2))
    return dict(boxes)


def frames(numbers: list[int]) -> dict[int, NDArray[np.uint8]]:
    """RGB frames of ``vtest.avi`` by 1-based number (<= 400)."""
    wanted = set(numbers)
    if max(wanted) > 400:
        raise ValueError("frames past 400 are the held-out half")
    out: dict[int, NDArray[np.uint8]] = {}
    with av.open(str(sample_video())) as container:
        for n, frame in enumerate(container.decode(video=0), start=1):
            if n in wanted:
                out[n] = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            if n >= max(wanted):
                break
    return out


def jpeg(image: NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def register_dataset(
    store: ObjectStore,
    datasets: DatasetRepo,
    name: str,
    write: Callable[[int], list[ManifestItem]],
    *,
    labels: Sequence[str] = ("person",),
) -> tuple[DatasetVersion, DatasetManifest]:
    """Reserve the next version of ``name``, let ``write(version)`` put its files and return
    its items, then write the manifest and mark the version ready with the manifest's sha256."""
    reserved = datasets.reserve(name, manifest_key, labels=labels, created_by="tests")
    items = write(reserved.version)
    manifest = DatasetManifest(
        name=name, version=reserved.version, created_at=T0, labels=list(labels), items=items
    )
    body = manifest.to_json()
    store.put(reserved.manifest_key, body)
    done = datasets.finish(
        name,
        reserved.version,
        manifest_sha256=sha256_hex(body),
        items=len(items),
        boxes=sum(i.boxes for i in items),
        camera_ids={i.camera_id for i in items},
    )
    return done, manifest


def build_dataset(
    store: ObjectStore,
    datasets: DatasetRepo,
    name: str,
    numbers: list[int],
    *,
    camera_id: str = "plaza",
    corrupt: frozenset[int] = frozenset(),
    segment: tuple[bytes, list[int]] | None = None,
) -> DatasetManifest:
    """Write the next version of dataset ``name``: frames ``numbers`` with their true boxes.

    Args:
        store: Where to write.
        datasets: Where the version is registered (ready, with the manifest's sha256).
        name: The dataset's name.
        numbers: Frame numbers (1-400) as JPEG items.
        camera_id: The camera of every item.
        corrupt: Frame numbers whose JPEG is replaced by garbage (its sha256 recorded, so the
            item passes the hash check and fails decoding: an unreadable frame).
        segment: ``(mp4 bytes, frame numbers)``: items pointing at a recorded segment (the
            frame index is the number - 1), read by random access.
    """
    images = frames(sorted(set(numbers) | set(segment[1] if segment else [])))
    truth = ground_truth()
    labels = ["person"]

    def write(version: int) -> list[ManifestItem]:
        items: list[ManifestItem] = []

        def add(n: int, image_rel: str, image_bytes: bytes, frame_index: int | None) -> None:
            item_id = f"f{n:04d}"
            label_text = yolo_lines(truth.get(n, []), labels, WIDTH, HEIGHT).encode()
            prefix = version_prefix(name, version)
            store.put(prefix + image_rel, image_bytes)
            store.put(label_key(name, version, item_id), label_text)
            items.append(
                ManifestItem(
                    id=item_id,
                    image=image_rel,
                    label=f"labels/{item_id}.txt",
                    image_sha256=sha256_hex(image_bytes),
                    label_sha256=sha256_hex(label_text),
                    camera_id=camera_id,
                    frame_ts=T0 + timedelta(seconds=(n - 1) / FPS),
                    frame_index=frame_index,
                    width=WIDTH,
                    height=HEIGHT,
                    boxes=len(truth.get(n, [])),
                )
            )

        for n in numbers:
            data = b"\xff\xd8 not really a jpeg" if n in corrupt else jpeg(images[n])
            key = image_key(name, version, f"f{n:04d}")
            add(n, key[len(version_prefix(name, version)) :], data, n - 1)
        if segment is not None:
            mp4, seg_numbers = segment
            for n in seg_numbers:
                add(n, "segments/seg0.mp4", mp4, n - 1)
        return items

    return register_dataset(store, datasets, name, write, labels=labels)[1]
