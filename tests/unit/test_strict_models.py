"""One strict pydantic base for config, API request bodies and storage settings."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

import sentinel
from sentinel.api.admin import ApiKeyCreate, UserCreate, UserUpdate
from sentinel.api.alerts import Feedback
from sentinel.api.prompts import ExperimentCreate, Promote, PromptCreate, VariantIn
from sentinel.config import CameraConfig, DetectorSettings
from sentinel.domain.strict import StrictModel
from sentinel.store.s3 import ObjectStoreSettings

ROOT = Path(sentinel.__file__).parent


def test_only_the_strict_base_configures_strictness() -> None:
    # (the process Settings are a pydantic-settings BaseSettings: their own SettingsConfigDict)
    forbid = re.compile(r'(?<!Settings)ConfigDict\([^)]*extra="forbid"')
    spelled = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if forbid.search(p.read_text())
    )
    assert spelled == ["domain/strict.py"]


@pytest.mark.parametrize(
    ("model", "valid"),
    [
        (UserCreate, {"username": "alice", "password": "x"}),
        (UserUpdate, {}),
        (ApiKeyCreate, {"name": "k"}),
        (Feedback, {"verdict": "true_positive"}),
        (PromptCreate, {"system": "s", "template": "t"}),
        (VariantIn, {"name": "a", "prompt_version": 1, "weight": 1.0}),
        (Promote, {"variant": "a"}),
        (CameraConfig, {"id": "cam", "source": "/videos/a.mp4"}),
        (DetectorSettings, {}),
        (ObjectStoreSettings, {}),
    ],
)
def test_unknown_keys_rejected_and_values_frozen(
    model: type[pydantic.BaseModel], valid: dict[str, object]
) -> None:
    assert issubclass(model, StrictModel)
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        model.model_validate({**valid, "typo_key": 1})
    value = model.model_validate(valid)
    name = next(iter(model.model_fields))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        setattr(value, name, getattr(value, name))


def test_experiment_create_is_strict_too() -> None:
    assert issubclass(ExperimentCreate, StrictModel)
