from __future__ import annotations

import numpy as np
import pytest

from sentinel.domain.boxes import (
    COCO_LABELS,
    Letterbox,
    ModelInput,
    box_iou,
    decode_yolo,
    input_tensor,
    letterbox,
    letterbox_u8,
    nms,
)
from tests.utils.factories import yolo_pred


def test_coco_labels() -> None:
    assert len(COCO_LABELS) == 80
    assert COCO_LABELS[:4] == ("person", "bicycle", "car", "motorcycle")
    assert COCO_LABELS[7] == "truck"
    assert COCO_LABELS[-1] == "toothbrush"
    assert len(set(COCO_LABELS)) == 80


@pytest.mark.parametrize(
    ("shape", "size", "scale", "pad_x", "pad_y"),
    [
        ((480, 640), 640, 1.0, 0.0, 80.0),
        ((720, 1280), 640, 0.5, 0.0, 140.0),
        ((1280, 720), 640, 0.5, 140.0, 0.0),
        ((320, 320), 640, 2.0, 0.0, 0.0),
        ((100, 300), 64, 64 / 300, 0.0, 21.0),
    ],
)
def test_letterbox_geometry(
    shape: tuple[int, int], size: int, scale: float, pad_x: float, pad_y: float
) -> None:
    image = np.zeros((*shape, 3), dtype=np.uint8)
    tensor, lb = letterbox(image, size)
    assert tensor.shape == (3, size, size)
    assert tensor.dtype == np.float32
    assert lb.scale == pytest.approx(scale)
    assert (lb.pad_x, lb.pad_y) == (pad_x, pad_y)
    assert (lb.frame_width, lb.frame_height) == (shape[1], shape[0])
    # Padding is gray 114, the image (black) is 0.
    gray = pytest.approx([114 / 255] * 3)
    if pad_y:
        assert tensor[:, 0, size // 2].tolist() == gray
        assert tensor[:, size - 1, size // 2].tolist() == gray
    if pad_x:
        assert tensor[:, size // 2, 0].tolist() == gray
        assert tensor[:, size // 2, size - 1].tolist() == gray
    assert float(tensor[:, size // 2, size // 2].max()) == 0.0


def test_letterbox_keeps_rgb_order_and_range() -> None:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[..., 0] = 255  # red
    tensor, _ = letterbox(image, 64)
    centre = tensor[:, 32, 32]
    assert centre.tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10), dtype=np.uint8), r"\(H, W, 3\) uint8 array, but got shape \(10, 10\)"),
        (np.zeros((10, 10, 4), dtype=np.uint8), r"but got shape \(10, 10, 4\)"),
        (np.zeros((10, 10, 3), dtype=np.float32), "but got dtype float32"),
        (np.zeros((0, 10, 3), dtype=np.uint8), r"but got shape \(0, 10, 3\)"),
    ],
)
def test_letterbox_rejects_bad_images(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        letterbox(image, 64)


@pytest.mark.parametrize("shape", [(480, 640), (720, 1280), (1080, 607), (333, 333)])
def test_letterbox_round_trip_of_a_box(shape: tuple[int, int]) -> None:
    height, width = shape
    _, lb = letterbox(np.zeros((height, width, 3), dtype=np.uint8), 640)
    frame_box = np.array([[0.1 * width, 0.2 * height, 0.6 * width, 0.9 * height]])
    input_box = frame_box * lb.scale + np.array([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y])
    back = lb.to_frame(input_box)
    np.testing.assert_allclose(back, frame_box, atol=1e-6)


def test_to_frame_clips_to_the_frame() -> None:
    lb = Letterbox(scale=0.5, pad_x=0.0, pad_y=140.0, size=640, frame_width=1280, frame_height=720)
    back = lb.to_frame(np.array([[-10.0, 100.0, 700.0, 600.0]]))
    np.testing.assert_allclose(back, [[0.0, 0.0, 1280.0, 720.0]])
    with pytest.raises(ValueError, match=r"shape \(N, 4\), but got shape \(4,\)"):
        lb.to_frame(np.zeros(4))


@pytest.mark.parametrize(
    ("boxes", "scores", "threshold", "kept"),
    [
        ([], [], 0.5, []),
        ([[0, 0, 10, 10]], [0.5], 0.5, [0]),
        # Two heavy overlaps of the best box are suppressed, the distant box survives.
        ([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]], [0.6, 0.9, 0.7, 0.8],
         0.5, [1, 2]),
        # IoU 0.333 stays under a 0.5 threshold, but not under 0.3.
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.5, [0, 1]),
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.8, 0.9], 0.3, [1]),
        # Zero-area boxes never divide by zero.
        ([[0, 0, 0, 0], [0, 0, 0, 0]], [0.9, 0.8], 0.5, [0, 1]),
    ],
)  # fmt: skip
def test_nms(
    boxes: list[list[float]], scores: list[float], threshold: float, kept: list[int]
) -> None:
    result = nms(np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(scores), threshold)
    assert result.dtype == np.intp
    assert result.tolist() == kept


@pytest.mark.parametrize(
    ("boxes", "scores", "message"),
    [
        (np.zeros((3, 5)), np.zeros(3), r"boxes must be a 2D array with shape \(N, 4\)"),
        (np.zeros((3, 4)), np.zeros(2), r"scores must have shape \(3,\)"),
    ],
)
def test_nms_rejects_bad_shapes(boxes: np.ndarray, scores: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nms(boxes, scores, 0.5)


def test_box_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], dtype=np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], dtype=np.float64)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0], [0.25, 0.25, 0.0]], rtol=1e-9)


LABELS = ("person", "car", "dog")
# A 1280x720 frame letterboxed into 640: scale 0.5, 140 px of padding on top.
LB = Letterbox(scale=0.5, pad_x=0.0, pad_y=140.0, size=640, frame_width=1280, frame_height=720)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # Two overlapping boxes of one class -> the better one.
        ([(100, 300, 40, 80, 0, 0.9), (102, 302, 40, 80, 0, 0.6)], [("person", 0.9)]),
        # The same overlap across two classes -> both kept.
        ([(100, 300, 40, 80, 0, 0.9), (102, 302, 40, 80, 1, 0.6)],
         [("person", 0.9), ("car", 0.6)]),
        # Under the confidence threshold -> dropped.
        ([(100, 300, 40, 80, 0, 0.9), (400, 300, 40, 80, 2, 0.1)], [("person", 0.9)]),
        ([(400, 300, 40, 80, 2, 0.2)], []),
        ([], []),
    ],
)  # fmt: skip
def test_decode_yolo(
    rows: list[tuple[float, float, float, float, int, float]], expected: list[tuple[str, float]]
) -> None:
    detections = decode_yolo(yolo_pred(rows, len(LABELS)), LB, LABELS)
    assert [(d.label, round(d.score, 4)) for d in detections] == expected
    for d in detections:
        assert d.class_id == LABELS.index(d.label)


def test_decode_yolo_maps_boxes_to_the_frame() -> None:
    pred = yolo_pred([(100, 300, 40, 80, 1, 0.8), (630, 150, 40, 40, 0, 0.7)], len(LABELS))
    car, person = decode_yolo(pred, LB, LABELS)
    # Input (80, 260, 120, 340) -> frame ((80-0)/0.5, (260-140)/0.5, ...).
    assert car.box.as_list() == pytest.approx([160.0, 240.0, 240.0, 400.0])
    # Input x2 = 650 lies outside the input, and y1 = 130 in the padding: clipped.
    assert person.box.as_list() == pytest.approx([1220.0, 0.0, 1280.0, 60.0])


def test_decode_yolo_caps_at_max_det() -> None:
    rows = [(20.0 + 50 * i, 300.0, 30.0, 30.0, 0, 0.5 + 0.01 * i) for i in range(10)]
    detections = decode_yolo(yolo_pred(rows, len(LABELS)), LB, LABELS, max_det=3)
    assert [round(d.score, 2) for d in detections] == [0.59, 0.58, 0.57]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((6, 10), r"4 \+ 3 rows for 3 labels, but got shape \(6, 10\)"),
        ((1, 7, 10), r"\(4 \+ nc, N\) array of one image, but got shape \(1, 7, 10\)"),
    ],
)
def test_decode_yolo_rejects_bad_shapes(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_yolo(np.zeros(shape, dtype=np.float32), LB, LABELS)


@pytest.mark.parametrize("shape", [(576, 768), (480, 640), (100, 300), (640, 640)])
def test_letterbox_u8_is_the_float_letterbox_before_scaling(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    prepared = letterbox_u8(image, 320)
    tensor, lb = letterbox(image, 320)
    assert prepared.image.shape == (320, 320, 3) and prepared.image.dtype == np.uint8
    assert prepared.letterbox == lb
    np.testing.assert_array_equal(input_tensor([prepared.image])[0], tensor)


def test_input_tensor_stacks_channels_first_in_unit_range() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.zeros((8, 8, 3), np.uint8)
    a[..., 1] = 255
    b[2, 5] = (51, 102, 153)
    batch = input_tensor([a, b])
    assert batch.shape == (2, 3, 8, 8) and batch.dtype == np.float32
    assert batch[0, 1].min() == 1.0 and batch[0, 0].max() == 0.0
    assert batch[1, :, 2, 5].tolist() == pytest.approx([0.2, 0.4, 0.6])


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "must not be empty"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)], "share one shape"),
    ],
)
def test_input_tensor_rejects_empty_and_mixed(images: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        input_tensor(images)


def test_model_input_must_match_its_letterbox() -> None:
    lb = letterbox_u8(np.zeros((10, 20, 3), np.uint8), 32).letterbox
    with pytest.raises(ValueError, match=r"\(32, 32, 3\) uint8"):
        ModelInput(np.zeros((32, 30, 3), np.uint8), lb)
    with pytest.raises(ValueError, match=r"\(32, 32, 3\) uint8"):
        ModelInput(np.zeros((32, 32, 3), np.float32), lb)
