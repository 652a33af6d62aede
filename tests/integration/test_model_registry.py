"""The MLflow model registry wrapper on a temp dir: register, aliases, fetch with its sha256
checked (a tampered artifact is refused), bootstrap of the champion."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sentinel.config import TrainSettings, mlflow_tracking_uri_of
from sentinel.models.files import ModelFileError, verify_recorded_digest, write_digest
from sentinel.train.registry import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    RegistryError,
)

LABELS = ["person", "car"]


def _model(tmp: Path, name: str, content: bytes, *, digest: bool = True) -> Path:
    path = tmp / name
    path.write_bytes(content)
    if digest:
        write_digest(path)
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    return ModelRegistry.embedded(tmp_path_factory.mktemp("mlflow-data"))


def test_embedded_store_lives_in_the_data_dir(tmp_path: Path) -> None:
    uri = mlflow_tracking_uri_of(TrainSettings(), tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"


def test_register_records_sha_labels_metrics_and_tags(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    content = b"onnx-bytes-one" * 100
    path = _model(tmp_path, "a.onnx", content)
    mv = registry.register(
        path,
        labels=LABELS,
        input_size=320,
        metrics={"map50": 0.71},
        tags={"gate": "passed"},
    )
    assert mv.sha256 == hashlib.sha256(content).hexdigest()
    assert mv.labels == tuple(LABELS) and mv.input_size == 320
    assert mv.metrics == {"map50": 0.71}
    assert mv.tags == {"gate": "passed"}
    assert mv.run_id and mv.aliases == ()
    assert registry.get(mv.version) == mv
    assert mv.version in [v.version for v in registry.versions()]

    fetched = registry.fetch_onnx(mv.version, tmp_path / "served")
    assert fetched.read_bytes() == content
    assert verify_recorded_digest(fetched) == mv.sha256  # the detector's loader agrees


def test_aliases_move_and_delete(registry: ModelRegistry, tmp_path: Path) -> None:
    one = registry.register(_model(tmp_path, "b.onnx", b"b" * 64), labels=LABELS, input_size=640)
    two = registry.register(_model(tmp_path, "c.onnx", b"c" * 64), labels=LABELS, input_size=640)
    registry.set_alias(CHALLENGER, one.version)
    assert registry.get(one.version).aliases == (CHALLENGER,)
    registry.set_alias(CHALLENGER, two.version)
    alias = registry.alias(CHALLENGER)
    assert alias is not None and alias.version == two.version
    assert registry.get(one.version).aliases == ()
    registry.delete_alias(CHALLENGER)
    registry.delete_alias(CHALLENGER)  # no error when unset
    assert registry.alias(CHALLENGER) is None
    with pytest.raises(RegistryError, match="no version 999"):
        registry.set_alias(CHALLENGER, 999)


def test_tampered_artifact_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    mv = registry.register(
        _model(tmp_path, "d.onnx", b"genuine" * 50), labels=LABELS, input_size=640
    )
    artifact = Path(mv.source.removeprefix("file://")) / "model.onnx"
    assert artifact.is_file()
    artifact.write_bytes(b"evil" * 50)  # someone with access to the artifact store
    with pytest.raises(ModelFileError, match=r"refusing .* sha256"):
        registry.fetch_onnx(mv.version, tmp_path / "served")
    assert not (tmp_path / "served" / f"sentinel-detector-v{mv.version}.onnx").exists()


def test_cached_copy_is_rechecked(registry: ModelRegistry, tmp_path: Path) -> None:
    mv = registry.register(_model(tmp_path, "e.onnx", b"e" * 80), labels=LABELS, input_size=640)
    dest = registry.fetch_onnx(mv.version, tmp_path / "served")
    dest.write_bytes(b"changed on disk")
    again = registry.fetch_onnx(mv.version, tmp_path / "served")  # fetched afresh, verified
    assert again.read_bytes() == b"e" * 80


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"labels": []}, "labels"),
        ({"input_size": 100}, "multiple of 32"),
        ({"tags": {"sha256": "x"}}, "set by the registry"),
    ],
)
def test_register_refuses_bad_arguments(
    registry: ModelRegistry, tmp_path: Path, kwargs: dict[str, object], error: str
) -> None:
    args: dict[str, object] = {"labels": LABELS, "input_size": 640, **kwargs}
    with pytest.raises(RegistryError, match=error):
        registry.register(_model(tmp_path, "f.onnx", b"f"), **args)  # type: ignore[arg-type]


def test_register_refuses_a_file_that_fails_its_recorded_digest(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    path = _model(tmp_path, "g.onnx", b"g" * 10)
    path.write_bytes(b"not what was recorded")
    with pytest.raises(ModelFileError, match="refusing"):
        registry.register(path, labels=LABELS, input_size=640)
    with pytest.raises(ModelFileError, match="no such file"):
        registry.register(tmp_path / "missing.onnx", labels=LABELS, input_size=640)


def test_bootstrap_champion_is_idempotent(tmp_path: Path) -> None:
    registry = ModelRegistry.embedded(tmp_path / "data")
    bundled = _model(tmp_path, "yolov8n.onnx", b"bundled" * 30)
    first = registry.bootstrap_champion(bundled, LABELS, 640)
    assert first.version == 1 and first.aliases == (CHAMPION,)
    assert first.tags["gate"] == "baseline"
    # Another process (a second ingress replica) opening the same store finds it.
    again = ModelRegistry.embedded(tmp_path / "data").bootstrap_champion(bundled, LABELS, 640)
    assert again == first
    assert [v.version for v in registry.versions()] == [1]
    # Without a champion, the version holding the same bytes becomes it again.
    registry.delete_alias(CHAMPION)
    assert registry.bootstrap_champion(bundled, LABELS, 640).version == 1
