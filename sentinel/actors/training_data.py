"""Curation on Ray Data: a dataset version's items become the Ray Dataset the trainer reads.

The rules are Ray-free (``sentinel.train.curation``, ``frames``, ``augment``, ``batching``);
this module only lays them on Ray Data:

1. dedupe by content hash and split by time on the manifest (cheap, on the driver);
2. ``read``: a ``map_batches`` that fetches each item's files from the object store, checks
   their sha256, decodes the JPEG (or the frame of a recorded MP4 segment, by random access
   with decord) and parses the labels; an unreadable item becomes a row with ``ok`` false and
   its ``error``, so it is skipped and counted, never fatal; the result is materialised once;
3. class balancing: each readable training item is repeated as ``balance`` says;
4. ``augment``: a lazy ``map_batches`` (flip, colour, scale/translate, then letterbox and the
   fixed-size target table), executed again on every epoch, so each epoch sees new variants.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
from numpy.typing import NDArray

from sentinel.store.objects import ObjectNotFound, ObjectStore
from sentinel.store.s3 import ObjectStoreSettings, make_object_store
from sentinel.train.augment import AugmentConfig, augment
from sentinel.train.batching import encode_sample
from sentinel.train.curation import CurationCounts, balance, dedupe, split_by_time
from sentinel.train.datasets import DatasetManifest, ManifestItem
from sentinel.train.frames import UnreadableItemError, decode_video_frames, is_segment, read_item
from sentinel.train.judging import Split

logger = logging.getLogger(__name__)

# Ray Data's tasks take a share of a CPU: on 2 cores the training worker holds most of one.
DATA_TASK_CPUS = 0.25
READ_BATCH = 8


@dataclass(frozen=True)
class StoreSpec:
    """How a Ray task opens the object store: the settings travel (the pydantic model itself,
    so its secret key survives, which a JSON dump would mask); clients do not."""

    objects: ObjectStoreSettings
    data_dir: str

    def open(self) -> ObjectStore:
        return make_object_store(self.objects, Path(self.data_dir))


@dataclass
class Curated:
    """The trainer's dataset, the validation split and what curation counted."""

    train: ray.data.Dataset
    validation: Split
    counts: CurationCounts
    train_rows: int
    max_boxes: int
    labels: list[str] = field(default_factory=list)


class _Reader:
    """``map_batches`` callable: read, verify and decode a batch of manifest items."""

    def __init__(self, store: StoreSpec, manifest: dict[str, Any], max_boxes: int) -> None:
        self.store = store.open()
        self.name = str(manifest["name"])
        self.version = int(manifest["version"])
        self.labels = list(manifest["labels"])
        self.max_boxes = max_boxes

    def _key(self, relative: str) -> str:
        return f"datasets/{self.name}/v{self.version}/{relative}"

    def _get(self, relative: str) -> bytes:
        try:
            return self.store.get(self._key(relative))
        except ObjectNotFound:
            raise UnreadableItemError(f"{relative} is missing from the object store") from None

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        items = [ManifestItem.model_validate_json(raw) for raw in batch["item"]]
        # Frames of one recorded segment are decoded together: one seek per key frame.
        frames: dict[str, dict[int, NDArray[np.uint8]] | str] = {}
        for item in items:
            if is_segment(item) and item.frame_index is not None:
                frames.setdefault(item.image, {})
        for image in list(frames):
            wanted = sorted(
                {it.frame_index for it in items if it.image == image and it.frame_index is not None}
            )
            try:
                data = self._get(image)
                decoded = decode_video_frames(data, wanted)
                frames[image] = dict(zip(wanted, decoded, strict=True))
            except UnreadableItemError as exc:
                frames[image] = str(exc)
        out: dict[str, list[Any]] = {
            k: [] for k in ("item_id", "ok", "error", "pixels", "height", "width", "labels")
        }
        for item in items:
            table = np.full((self.max_boxes, 5), -1.0, dtype=np.float32)
            try:
                image_bytes = self._get(item.image)
                label_bytes = self._get(item.label)
                frame = None
                if is_segment(item):
                    cached = frames.get(item.image)
                    if isinstance(cached, str):
                        raise UnreadableItemError(cached)
                    frame = (cached or {}).get(item.frame_index or 0)
                pixels_in, boxes, classes = read_item(
                    item, image_bytes, label_bytes, self.labels, frame=frame
                )
                if len(boxes) > self.max_boxes:
                    raise UnreadableItemError(f"{len(boxes)} boxes, more than {self.max_boxes}")
                table[: len(boxes), 0] = classes
                table[: len(boxes), 1:] = boxes
                ok, error, pixels = True, "", np.ascontiguousarray(pixels_in).tobytes()
                height, width = int(pixels_in.shape[0]), int(pixels_in.shape[1])
            except UnreadableItemError as exc:
                logger.warning("skipping dataset item %s: %s", item.id, exc)
                ok, error, pixels, height, width = False, f"item {item.id}: {exc}", b"", 0, 0
            out["item_id"].append(item.id)
            out["ok"].append(ok)
            out["error"].append(error)
            out["pixels"].append(pixels)
            out["height"].append(height)
            out["width"].append(width)
            out["labels"].append(table)
        return {
            "item_id": np.array(out["item_id"], dtype=object),
            "ok": np.array(out["ok"], dtype=bool),
            "error": np.array(out["error"], dtype=object),
            "pixels": np.array(out["pixels"], dtype=object),
            "height": np.array(out["height"], dtype=np.int64),
            "width": np.array(out["width"], dtype=np.int64),
            "labels": np.stack(out["labels"]),
        }


def _image(row_pixels: bytes, height: int, width: int) -> NDArray[np.uint8]:
    return np.frombuffer(row_pixels, dtype=np.uint8).reshape(int(height), int(width), 3)


def _boxes(table: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rows = table[table[:, 0] >= 0]
    return rows[:, 1:5].astype(np.float32), rows[:, 0].astype(np.int64)


class _Augment:
    """``map_batches`` callable: repeat rows (balancing), augment, letterbox, encode targets."""

    def __init__(
        self, size: int, max_boxes: int, repeats: dict[str, int], config: AugmentConfig | None
    ) -> None:
        self.size = size
        self.max_boxes = max_boxes
        self.repeats = repeats
        self.config = config
        self.rng = np.random.default_rng()

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        images: list[NDArray[np.uint8]] = []
        targets: list[NDArray[np.float32]] = []
        for i, item_id in enumerate(batch["item_id"]):
            if not batch["ok"][i]:
                continue  # unreadable: counted by curation, never trained on
            base = _image(batch["pixels"][i], batch["height"][i], batch["width"][i])
            boxes, classes = _boxes(batch["labels"][i])
            for _ in range(self.repeats.get(str(item_id), 1)):
                if self.config is None:
                    img, b, c = base, boxes, classes
                else:
                    img, b, c = augment(base, boxes, classes, self.rng, self.config)
                sample = encode_sample(img, b, c, size=self.size, max_boxes=self.max_boxes)
                images.append(sample["image"].astype(np.uint8))
                targets.append(sample["targets"].astype(np.float32))
        if not images:
            return {
                "image": np.zeros((0, self.size, self.size, 3), dtype=np.uint8),
                "targets": np.zeros((0, self.max_boxes, 5), dtype=np.float32),
            }
        return {"image": np.stack(images), "targets": np.stack(targets)}


def quiet_progress() -> None:
    """No Ray Data progress bars in the job's and workers' logs."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def read_dataset(
    manifest: DatasetManifest, items: Sequence[ManifestItem], store: StoreSpec, max_boxes: int
) -> ray.data.Dataset:
    """The items read, verified and decoded on Ray Data (materialised)."""
    quiet_progress()
    rows = [{"item": item.model_dump_json()} for item in items]
    header = {"name": manifest.name, "version": manifest.version, "labels": manifest.labels}
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // READ_BATCH, 8)))
    read: ray.data.Dataset = ds.map_batches(
        _Reader,
        fn_constructor_args=(store, header, max_boxes),
        batch_size=READ_BATCH,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=DATA_TASK_CPUS,
    ).materialize()
    return read


def to_split(ds: ray.data.Dataset, labels: Sequence[str]) -> tuple[Split, int, list[str]]:
    """The readable rows of a read dataset as an evaluation split; and the unreadable count
    with their errors."""
    split = Split()
    errors: list[str] = []
    for batch in ds.iter_batches(batch_size=16, batch_format="numpy"):
        for i in range(len(batch["item_id"])):
            if not batch["ok"][i]:
                errors.append(str(batch["error"][i]))
                continue
            image = _image(batch["pixels"][i], batch["height"][i], batch["width"][i])
            boxes, classes = _boxes(batch["labels"][i])
            truths = [
                (labels[int(c)], (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
                for b, c in zip(boxes, classes, strict=True)
            ]
            split.add(image.copy(), truths)
    return split, len(errors), errors


def max_boxes_of(items: Sequence[ManifestItem]) -> int:
    return max([1, *(item.boxes for item in items)])


def curate(
    manifest: DatasetManifest,
    store: StoreSpec,
    *,
    size: int,
    validation_fraction: float,
    blocks: int,
    gap_s: float,
    max_repeat: int,
    augment_config: AugmentConfig | None = None,
) -> Curated:
    """Curate ``manifest`` into the training Ray Dataset and the validation split.

    Raises:
        ValueError: If no readable training item is left.
    """
    items, duplicates = dedupe(manifest.items)
    train_items, val_items, dropped = split_by_time(
        items, validation_fraction=validation_fraction, blocks=blocks, gap_s=gap_s
    )
    max_boxes = max_boxes_of(items)
    train_read = read_dataset(manifest, train_items, store, max_boxes)
    val_read = read_dataset(manifest, val_items, store, max_boxes) if val_items else None

    meta = train_read.select_columns(["item_id", "ok", "error", "labels"]).take_all()
    readable = [row for row in meta if row["ok"]]
    errors = [str(row["error"]) for row in meta if not row["ok"]]
    labels = list(manifest.labels)
    classes_of = {
        str(row["item_id"]): sorted({labels[int(c)] for c in row["labels"][:, 0] if c >= 0})
        for row in readable
    }
    balanced = balance(list(classes_of), lambda item_id: classes_of[item_id], max_repeat=max_repeat)
    repeats = dict(Counter(balanced))
    if not readable:
        raise ValueError(
            f"dataset {manifest.name} v{manifest.version} has no readable training item "
            f"({len(errors)} unreadable: {'; '.join(errors[:3])})"
        )
    validation = Split()
    if val_read is not None:
        validation, _, val_errors = to_split(val_read, labels)
        errors += val_errors
    boxes_per_label: Counter[str] = Counter()
    for row in readable:
        for c in row["labels"][:, 0]:
            if c >= 0:
                boxes_per_label[labels[int(c)]] += 1
    train = train_read.map_batches(
        _Augment,
        fn_constructor_args=(size, max_boxes, repeats, augment_config or AugmentConfig()),
        batch_size=READ_BATCH,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=DATA_TASK_CPUS,
    )
    counts = CurationCounts(
        items=len(manifest.items),
        duplicates=duplicates,
        unreadable=len(errors),
        dropped_at_borders=dropped,
        train=len(readable),
        validation=len(validation),
        train_after_balance=len(balanced),
        boxes_per_label=dict(boxes_per_label),
    )
    if errors:
        logger.warning("curation skipped %d unreadable items: %s", len(errors), errors[:5])
    return Curated(
        train=train,
        validation=validation,
        counts=counts,
        train_rows=len(balanced),
        max_boxes=max_boxes,
        labels=labels,
    )


def read_split(manifest: DatasetManifest, store: StoreSpec) -> tuple[Split, int]:
    """A whole dataset version (the regression set) as an evaluation split, read on Ray Data;
    and its unreadable count."""
    ds = read_dataset(manifest, manifest.items, store, max_boxes_of(manifest.items))
    split, unreadable, _ = to_split(ds, manifest.labels)
    return split, unreadable


def counts_json(counts: CurationCounts) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(counts.__dict__))
    return out
