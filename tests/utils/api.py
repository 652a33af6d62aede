"""The API app over given services, and a TestClient for it (lifespan entered)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import State

from sentinel.api.app import create_app
from sentinel.api.deps import Services

_built: list[FastAPI] = []


def api_app(services: Services) -> FastAPI:
    """An app serving ``services`` (as the Serve ingress sets them), of its own: its own state
    and middleware stack, over the routes of one app built once per session.

    Building the app costs about half a second of CPU (FastAPI analyses every route's
    dependencies), which a thousand API tests would pay a thousand times. The routes hold no
    state of an app: a request finds its services through the app that serves it
    (``scope["app"]``). ``dependency_overrides`` is the built app's dict, which the routes
    consult: it is emptied for each new app, so an override never outlives its test.
    """
    if not _built:
        _built.append(create_app())
    app = copy.copy(_built[0])
    app.state = State()
    app.middleware_stack = None  # built again on the first request, around this app
    app.dependency_overrides.clear()
    app.state.services = services
    return app


@contextmanager
def api_client(services: Services, **kwargs: Any) -> Iterator[TestClient]:
    """A TestClient of ``api_app(services)``; ``kwargs`` go to TestClient (headers, ...)."""
    with TestClient(api_app(services), **kwargs) as client:
        yield client
