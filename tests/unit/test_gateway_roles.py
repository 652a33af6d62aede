"""Roles, scopes and camera visibility."""

from __future__ import annotations

import pytest

from sentinel.gateway.roles import (
    ADMIN,
    ALERTS_READ,
    ALERTS_WRITE,
    ALL_SCOPES,
    ANNOTATIONS_REVIEW,
    ANNOTATIONS_WRITE,
    ANONYMOUS,
    APIKEYS_WRITE,
    AUDIT_READ,
    CAMERAS_READ,
    CAMERAS_WRITE,
    EVENTS_READ,
    LLM_USE,
    METRICS_READ,
    MODELS_ADMIN,
    MODELS_READ,
    PRIVACY_ADMIN,
    PROMPTS_ADMIN,
    ROLE_SCOPES,
    USERS_ADMIN,
    Principal,
    Role,
    scopes_for,
)


def test_role_scopes() -> None:
    assert ROLE_SCOPES[Role.VIEWER] == {EVENTS_READ, CAMERAS_READ, ALERTS_READ}
    assert ROLE_SCOPES[Role.OPERATOR] == {
        EVENTS_READ,
        CAMERAS_READ,
        ALERTS_READ,
        METRICS_READ,
        APIKEYS_WRITE,
        ALERTS_WRITE,
        LLM_USE,
        ANNOTATIONS_WRITE,
        ANNOTATIONS_REVIEW,
        MODELS_READ,
    }
    # An annotator labels frames of its cameras; it neither reviews nor trains nor serves models.
    assert ROLE_SCOPES[Role.ANNOTATOR] == {CAMERAS_READ, ANNOTATIONS_WRITE}
    assert {MODELS_ADMIN, PRIVACY_ADMIN} <= ROLE_SCOPES[Role.ADMIN] - ROLE_SCOPES[Role.OPERATOR]
    assert PROMPTS_ADMIN in ROLE_SCOPES[Role.ADMIN] - ROLE_SCOPES[Role.OPERATOR]
    assert ROLE_SCOPES[Role.ADMIN] == ALL_SCOPES
    assert {CAMERAS_WRITE, AUDIT_READ, USERS_ADMIN, ADMIN} <= ALL_SCOPES
    assert set(ROLE_SCOPES) == set(Role)
    assert Role("viewer") is Role.VIEWER and str(Role.ADMIN) == "admin"


def test_role_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        ROLE_SCOPES[Role.VIEWER] = ALL_SCOPES  # type: ignore[index]


@pytest.mark.parametrize(
    ("role", "requested", "granted"),
    [
        (Role.VIEWER, None, {EVENTS_READ, CAMERAS_READ, ALERTS_READ}),
        (Role.VIEWER, [EVENTS_READ], {EVENTS_READ}),
        (Role.VIEWER, [EVENTS_READ, ADMIN, USERS_ADMIN], {EVENTS_READ}),  # dropped, not granted
        (Role.VIEWER, [], set()),
        (Role.OPERATOR, [METRICS_READ, CAMERAS_WRITE], {METRICS_READ}),
        (Role.OPERATOR, ["made:up"], set()),
        (Role.ADMIN, [AUDIT_READ, "made:up"], {AUDIT_READ}),
        (Role.ADMIN, None, ALL_SCOPES),
    ],
)
def test_scopes_for(role: Role, requested: list[str] | None, granted: set[str]) -> None:
    assert scopes_for(role, requested) == granted


def viewer(cameras: frozenset[str] | None) -> Principal:
    return Principal("u1", "user", Role.VIEWER, ROLE_SCOPES[Role.VIEWER], cameras)


@pytest.mark.parametrize(
    ("cameras", "camera", "groups", "visible"),
    [
        (None, "back_door", (), True),
        (frozenset({"front_door"}), "front_door", (), True),
        (frozenset({"front_door"}), "back_door", (), False),  # Frigate's classic check
        (frozenset({"group:lobby"}), "lobby_cam", ("lobby",), True),
        (frozenset({"group:lobby"}), "lobby_cam", ("garage", "lobby"), True),
        (frozenset({"group:lobby"}), "garage_cam", ("garage",), False),
        (frozenset({"group:lobby"}), "lobby_cam", (), False),
        (frozenset({"group:lobby"}), "group:lobby", (), False),  # never a camera id
        (None, "group:lobby", (), False),
        (frozenset({"group:"}), "cam", ("",), False),
        (frozenset(), "front_door", ("lobby",), False),  # empty set: nothing at all
        (None, "", (), False),
    ],
)
def test_can_see(
    cameras: frozenset[str] | None, camera: str, groups: tuple[str, ...], visible: bool
) -> None:
    assert viewer(cameras).can_see(camera, groups) is visible


def test_has_is_exact_membership() -> None:
    p = viewer(None)
    assert p.has(EVENTS_READ) and not p.has(CAMERAS_WRITE)
    key = Principal("k1", "apikey", Role.ADMIN, frozenset({ADMIN}), frozenset({"cam1"}))
    assert key.has(ADMIN) and not key.has(USERS_ADMIN)  # "admin" is not a wildcard
    assert not key.can_see("cam2")  # camera limits bind admins too


def test_anonymous_sees_and_holds_nothing() -> None:
    assert ANONYMOUS.kind == "anonymous" and ANONYMOUS.role is None
    assert not any(ANONYMOUS.has(s) for s in ALL_SCOPES)
    assert not ANONYMOUS.can_see("front_door", ("lobby",))


def test_principal_kind_is_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        Principal("u", "root", Role.ADMIN, ALL_SCOPES, None)
