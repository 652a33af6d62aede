"""Ask with the real embedded model (Qwen2.5 0.5B GGUF), over the OpenAI-compatible route it is
served by, through the alert agent's router: the count question of the demo.

The small model's wording is not asserted, only what code guarantees whatever it writes: the
count comes from the database and is stated, the citations are the counted events, and the
model was asked (its tokens counted by the agent's budget).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.agent.alert_agent import AlertAgent, BackendConfig
from sentinel.api.app import create_app
from sentinel.api.deps import Services
from sentinel.gateway.roles import Role
from sentinel.models.llm_runner import LlamaRunner
from sentinel.store.db import make_engine, migrate, sqlite_url
from tests.integration.test_ask_api import COUNT_Q, _ask, embedder, seeded, services
from tests.utils.auth import add_user
from tests.utils.llm import RunnerLlm, serve_app
from tests.utils.services import make_services

__all__ = ["embedder", "seeded", "services"]  # fixtures shared with test_ask_api


@pytest.fixture(scope="module")
def llm_url(qwen_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Sentinel's own OpenAI-compatible route over the real model, and an operator's token."""
    tmp = tmp_path_factory.mktemp("ask-llm")
    engine: Engine = make_engine(sqlite_url(tmp / "db.sqlite"))
    migrate(engine)
    llm_services = make_services(engine, tmp)
    llm_services.agent.llm = RunnerLlm(LlamaRunner(qwen_gguf, threads=2, ctx_size=2048))
    operator = add_user(llm_services.security, "operator", Role.OPERATOR)
    app = create_app()
    app.state.services = llm_services
    with serve_app(app) as url:
        yield f"{url}/v1", operator.token
    engine.dispose()


@pytest.fixture
def store_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: the model's time is the cost here, not the database."""
    engine = make_engine(sqlite_url(tmp_path / "db" / "sentinel.db"))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def agent(llm_url: tuple[str, str]) -> AlertAgent:
    url, token = llm_url
    return AlertAgent(
        [
            BackendConfig(
                "embedded", base_url=url, model="qwen", api_key=token, timeout_s=120, max_tokens=48
            )
        ],
        daily_token_budget=100_000,
    )


def test_the_real_model_answers_the_count_question(
    seeded: Services, client: TestClient, agent: AlertAgent
) -> None:
    admin = add_user(seeded.security, "root", Role.ADMIN)
    body = _ask(client, admin, COUNT_Q)
    assert body["count"]["total"] == 3
    assert [c["id"] for c in body["citations"]] == [f"demo-recent-{i}" for i in range(3)]
    assert "3" in body["answer"]
    assert body["mode"] in {"llm", "retrieval_only"}
    if body["mode"] == "retrieval_only":  # the model's answer was checked and rejected
        assert body["llm_error"] and "LLM" in body["llm_error"], body
    health = agent.health()[0]
    assert health["successes"] == 1 and health["failures"] == 0
    assert agent.router.budget is not None and agent.router.budget.spent > 0
