"""Property-based fuzzing of the whole API from its OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid, as an admin (so guards do not cut
the exploration short); the API must never answer 5xx and every response must match the
schema it declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from sentinel.api.deps import SearchServices, TrainingServices, VoiceServices
from sentinel.config import TrainSettings
from sentinel.gateway.roles import Role
from sentinel.models.embedder import TextEmbedder
from sentinel.models.whisper import SpeechRecognizer
from sentinel.search.index import VectorIndex
from sentinel.search.service import SearchService
from sentinel.search.voice import on_a_thread
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.search_queue_repo import SearchQueue
from sentinel.store.training_repo import TrainingRunRepository
from tests.utils.api import api_app
from tests.utils.auth import add_user
from tests.utils.mining import local_mining
from tests.utils.models import local_models
from tests.utils.services import RecordingLauncher, make_services


@pytest.fixture
def fuzz_app(
    tmp_path: Path, whisper_model: Path, onnx_model: Path
) -> Iterator[tuple[Any, dict[str, str]]]:
    engine = make_engine(sqlite_url(tmp_path / "fuzz.sqlite"))
    migrate(engine)
    services = make_services(
        engine,
        tmp_path,
        auth={"rate_per_s": 10_000, "rate_burst": 100_000},
        models=local_models(engine, tmp_path),
    )
    services.search = SearchServices(
        SearchService(
            VectorIndex(tmp_path / "search"),
            TextEmbedder(threads=1).embed,
            events=services.events,
            incidents=IncidentRepository(engine),
            cameras=services.cameras,
            queue=SearchQueue(engine),
            objects=services.objects,
        )
    )
    # The real recogniser: generated bodies must be refused (422) before it, or transcribed.
    services.voice = VoiceServices(on_a_thread(SpeechRecognizer(whisper_model, threads=2)))
    # No dataset exists: a generated POST /training/runs is a 422, never a launch.
    services.training = TrainingServices(
        TrainingRunRepository(engine), RecordingLauncher(), TrainSettings()
    )
    services.mining = local_mining(services, onnx_model)
    admin = add_user(services.security, "fuzzer", Role.ADMIN)
    yield api_app(services), admin.headers
    engine.dispose()


def test_api_never_fails_or_breaks_its_schema(fuzz_app: tuple[Any, dict[str, str]]) -> None:
    """Drives schemathesis directly (its pytest plugin does not support pytest 9 yet)."""
    app, headers = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples each run: CI stays reproducible
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            fuzz()
        except Exception as exc:
            raise AssertionError(f"{operation.method.upper()} {operation.path}: {exc}") from exc
