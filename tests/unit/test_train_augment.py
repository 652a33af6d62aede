"""Augmentation moves boxes with the pixels; collation builds ultralytics' batch dict."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.train.augment import AugmentConfig, affine, augment, hflip, jitter_hsv
from sentinel.train.batching import collate, decode_targets, encode_sample


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A gray 120x160 image with one white block at x 20..50, y 30..90 (its box)."""
    image = np.full((120, 160, 3), 40, dtype=np.uint8)
    image[30:90, 20:50] = 255
    return image, np.array([[20, 30, 50, 90]], dtype=np.float32), np.array([0])


def bright_box(image: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(image[..., 0] > 200)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_hflip_mirrors_boxes_with_the_pixels() -> None:
    image, boxes, _ = scene()
    out, moved = hflip(image, boxes)
    assert bright_box(out) == (110, 30, 140, 90)
    assert moved.tolist() == [[110.0, 30.0, 140.0, 90.0]]


@pytest.mark.parametrize(("scale", "dx", "dy"), [(1.0, 10, -5), (1.2, 0, 0), (0.8, -6, 8)])
def test_affine_moves_boxes_where_the_pixels_go(scale: float, dx: float, dy: float) -> None:
    image, boxes, classes = scene()
    out, moved, kept = affine(image, boxes, classes, scale=scale, dx=dx, dy=dy)
    assert out.shape == image.shape and kept.tolist() == [0]
    assert np.allclose(moved[0], bright_box(out), atol=1.5)


def test_affine_drops_a_box_pushed_out_of_the_frame() -> None:
    image, boxes, classes = scene()
    _, moved, kept = affine(image, boxes, classes, scale=1.0, dx=-45, dy=0)
    assert len(moved) == 0 and len(kept) == 0


def test_jitter_changes_colour_not_geometry() -> None:
    image, _, _ = scene()
    out = jitter_hsv(image, 0.0, 1.0, 0.5)
    assert out.shape == image.shape
    assert out[60, 30].mean() < image[60, 30].mean()


def test_augment_keeps_boxes_inside_and_on_the_object() -> None:
    image, boxes, classes = scene()
    rng = np.random.default_rng(3)
    cfg = AugmentConfig(hue=0, saturation=0, value=0)
    for _ in range(10):
        out, moved, _ = augment(image, boxes, classes, rng, cfg)
        assert out.shape == image.shape
        if len(moved):
            assert np.allclose(moved[0], bright_box(out), atol=1.5)
            assert (moved[:, [0, 2]] <= 160).all() and (moved[:, [1, 3]] <= 120).all()


def test_augment_rejects_mismatched_arrays() -> None:
    image, boxes, _ = scene()
    with pytest.raises(ValueError, match=r"classes must be an \(1,\) array"):
        augment(image, boxes, np.array([0, 1]), np.random.default_rng())


def test_encode_and_collate_make_ultralytics_batch() -> None:
    image, boxes, classes = scene()
    a = encode_sample(image, boxes, classes, size=64, max_boxes=3)
    b = encode_sample(
        image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), size=64, max_boxes=3
    )
    assert a["image"].shape == (64, 64, 3) and a["targets"].shape == (3, 5)
    # 160x120 scaled by 0.4 into 64x64, padded 8 px top: the box is x 8..20, y 20..44
    back, cls = decode_targets(a["targets"], 64)
    assert np.allclose(back, [[8, 20, 20, 44]], atol=1e-4) and cls.tolist() == [0]
    batch = collate(np.stack([b["image"], a["image"]]), np.stack([b["targets"], a["targets"]]))
    assert batch["img"].shape == (2, 3, 64, 64) and batch["img"].max() <= 1.0
    assert batch["batch_idx"].tolist() == [1.0]
    assert batch["cls"].tolist() == [[0.0]]
    assert np.allclose(batch["bboxes"], [[14 / 64, 32 / 64, 12 / 64, 24 / 64]])


def test_encode_refuses_more_boxes_than_the_table_holds() -> None:
    image, boxes, classes = scene()
    with pytest.raises(ValueError, match="at most 0"):
        encode_sample(image, boxes, classes, size=64, max_boxes=0)
