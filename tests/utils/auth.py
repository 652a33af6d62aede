"""Users, tokens and security services for tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from sentinel.api.deps import AgentServices
from sentinel.api.gateway import SecurityServices
from sentinel.api.setup import build_security
from sentinel.config import AuthSettings
from sentinel.gateway.passwords import Passwords
from sentinel.gateway.roles import Role, scopes_for
from sentinel.store.alert_repo import AlertRepository, ExperimentRepository, PromptRepository

CHEAP_PASSWORDS = Passwords(time_cost=1, memory_cost=1024, parallelism=1)


def make_security(
    engine: Engine, data_dir: Path, *, redis_url: str | None = None, **auth: object
) -> SecurityServices:
    """Real gateway services over ``engine``, with a cheap argon2 profile for speed.

    ``redis_url`` puts the rate limits in Redis, as the platform does when it is configured.
    """
    return build_security(
        AuthSettings(**auth),
        engine,
        data_dir,
        redis_url=redis_url,
        passwords=CHEAP_PASSWORDS,
    )


@dataclass(frozen=True)
class AuthedUser:
    id: str
    username: str
    password: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_user(
    security: SecurityServices,
    username: str,
    role: Role,
    cameras: list[str] | None = None,
) -> AuthedUser:
    """A user with a random strong password and a fresh access token."""
    password = secrets.token_urlsafe(16)
    record = security.users.create(username, security.passwords.hash(password), role.value, cameras)
    token = security.issuer.issue_access(
        record.id, scopes_for(role, None), cameras=cameras, kind="user"
    )
    return AuthedUser(record.id, username, password, role, token)


def agent_services(engine: Engine) -> AgentServices:
    """The agent's stores over ``engine``, without running deployments."""
    return AgentServices(
        alerts=AlertRepository(engine),
        prompts=PromptRepository(engine),
        experiments=ExperimentRepository(engine),
    )
