"""The dataset format: YOLO lines, manifest, sha256 verification (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sentinel.train.datasets import (
    DatasetError,
    DatasetManifest,
    LabeledBox,
    ManifestItem,
    image_key,
    label_key,
    manifest_key,
    parse_yolo_lines,
    sha256_hex,
    verify_item,
    yolo_lines,
)

LABELS = ["person", "car"]


def test_yolo_round_trip_in_pixels() -> None:
    boxes = [
        LabeledBox("person", 10.0, 20.0, 110.5, 220.25),
        LabeledBox("car", 0.0, 0.0, 768.0, 576.0),
        LabeledBox("person", 700.0, 500.0, 703.0, 503.0),
    ]
    text = yolo_lines(boxes, LABELS, 768, 576)
    assert text.count("\n") == 3
    assert text.splitlines()[1] == "1 0.500000 0.500000 1.000000 1.000000"
    back = parse_yolo_lines(text, LABELS, 768, 576)
    assert [b.label for b in back] == ["person", "car", "person"]
    for a, b in zip(boxes, back, strict=True):
        for attr in ("x1", "y1", "x2", "y2"):
            assert getattr(b, attr) == pytest.approx(getattr(a, attr), abs=1e-3)


def test_empty_image_is_an_empty_file() -> None:
    assert yolo_lines([], LABELS, 10, 10) == ""
    assert parse_yolo_lines("\n\n", LABELS) == []


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        (LabeledBox("dog", 1, 1, 5, 5), "box 0: label 'dog'"),
        (LabeledBox("person", -1, 1, 5, 5), "inside the 10x10 image"),
        (LabeledBox("person", 1, 1, 11, 5), "inside the 10x10 image"),
        (LabeledBox("person", 5, 1, 5, 5), "non-empty"),
    ],
)
def test_yolo_lines_refuses(box: LabeledBox, reason: str) -> None:
    with pytest.raises(DatasetError, match=reason.replace("(", r"\(")):
        yolo_lines([box], LABELS, 10, 10)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0 0.5 0.5 0.1", "line 1: expected 5 fields"),
        ("\n0 0.5 0.5 x 0.1", "line 2: not numbers"),
        ("2 0.5 0.5 0.1 0.1", "class index 2"),
        ("0 0.5 0.5 0 0.1", "w, h > 0"),
        ("0 0.95 0.5 0.2 0.1", "not inside the image"),
        ("0 nan 0.5 0.2 0.1", "finite"),
    ],
)
def test_parse_refuses(text: str, reason: str) -> None:
    with pytest.raises(DatasetError, match=reason):
        parse_yolo_lines(text, LABELS)


def _item(image: bytes, label: bytes) -> ManifestItem:
    return ManifestItem(
        id="abc",
        image="images/abc.jpg",
        label="labels/abc.txt",
        image_sha256=sha256_hex(image),
        label_sha256=sha256_hex(label),
        camera_id="cam1",
        frame_ts=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        frame_index=7,
        width=10,
        height=10,
        boxes=1,
    )


def test_verify_item_fails_on_one_changed_byte() -> None:
    image, label = b"\xff\xd8jpegdata\xff\xd9", b"0 0.5 0.5 0.2 0.2\n"
    item = _item(image, label)
    verify_item(item, image, label)
    changed = bytearray(image)
    changed[3] ^= 0x01
    with pytest.raises(DatasetError, match=r"images/abc\.jpg: sha256"):
        verify_item(item, bytes(changed), label)
    with pytest.raises(DatasetError, match=r"labels/abc\.txt: sha256"):
        verify_item(item, image, label.replace(b"0.2 0.2", b"0.2 0.3"))


def test_manifest_json_round_trip_and_refusals() -> None:
    manifest = DatasetManifest(
        name="site-a",
        version=3,
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        labels=LABELS,
        items=[_item(b"i", b"l")],
    )
    back = DatasetManifest.from_json(manifest.to_json())
    assert back == manifest
    assert back.format == "yolo" and back.locked_by == []
    with pytest.raises(DatasetError, match="not a valid dataset manifest"):
        DatasetManifest.from_json(b'{"name": "x"}')
    with pytest.raises(DatasetError):
        DatasetManifest.from_json(manifest.to_json().replace(b'"yolo"', b'"coco"'))
    with pytest.raises(ValueError, match="timezone-aware"):
        DatasetManifest(name="a", version=1, created_at=datetime(2026, 1, 1), labels=[], items=[])


def test_keys_follow_the_layout() -> None:
    assert manifest_key("site-a", 2) == "datasets/site-a/v2/manifest.json"
    assert image_key("site-a", 2, "it1") == "datasets/site-a/v2/images/it1.jpg"
    assert label_key("site-a", 2, "it1") == "datasets/site-a/v2/labels/it1.txt"
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(DatasetError, match="dataset name"):
            manifest_key(bad, 1)
    with pytest.raises(DatasetError, match="version"):
        manifest_key("a", 0)
