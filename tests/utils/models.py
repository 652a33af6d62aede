"""Model serving for API tests: the Ray side faked (recorded), the rest real."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from sentinel.api.models import LocalModelControl
from sentinel.models.files import write_digest
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.model_repo import ModelServingRepository
from sentinel.train.registry import ModelRegistry
from sentinel.train.serving import AuditFn, ModelService


class FakeServing:
    """The Ray side, recorded: canary deployed / removed, routes pushed, replicas' version."""

    def __init__(self) -> None:
        self.canary: dict[str, Any] | None = None
        self.routes: list[dict[str, Any]] = []
        self.replica_version = 1
        self.tallies: list[dict[str, dict[str, float]]] = []
        self.swaps = True

    def deploy_canary(self, model: Mapping[str, Any]) -> None:
        assert Path(model["path"]).is_file()  # only a fetched, verified file is deployed
        self.canary = dict(model)

    def remove_canary(self) -> None:
        self.canary = None

    def push_route(self, route: Mapping[str, Any]) -> int:
        self.routes.append(dict(route))
        return 1

    def wait_champion(self, version: int, timeout_s: float) -> bool:
        if self.swaps:
            self.replica_version = version
        return self.swaps

    def camera_tallies(self) -> list[dict[str, dict[str, float]]]:
        return self.tallies


def audit_appender(audit: AuditRepository) -> AuditFn:
    """Appends the service's audit entries to the real audit log."""

    def append(actor: str, action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
        audit.append(
            actor=actor, action=action, target=target, client="test", outcome=outcome, detail=detail
        )

    return append


def local_models(engine: Engine, tmp_path: Path) -> LocalModelControl:
    """A model service over an embedded registry in ``tmp_path``: v1 the champion, v2 a
    version that passed its gate, v3 one that failed it."""
    registry = ModelRegistry.embedded(tmp_path / "registry")
    for n, gate in ((1, None), (2, "passed"), (3, "failed")):
        path = tmp_path / f"m{n}.onnx"
        path.write_bytes(b"model %d" % n)
        write_digest(path)
        if gate is None:
            registry.bootstrap_champion(path, ["person"], 640)
        else:
            registry.register(path, labels=["person"], input_size=640, tags={"gate": gate})
    service = ModelService(
        registry=registry,
        repo=ModelServingRepository(engine),
        serving=FakeServing(),
        audit=audit_appender(AuditRepository(engine)),
        models_dir=tmp_path / "served",
        input_size=640,
    )
    return LocalModelControl(service)
