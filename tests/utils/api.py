"""The API app over given services, and a TestClient for it (lifespan entered)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from sentinel.api.app import create_app
from sentinel.api.deps import Services


def api_app(services: Services) -> FastAPI:
    """A fresh app serving ``services`` (as the Serve ingress sets them)."""
    app = create_app()
    app.state.services = services
    return app


@contextmanager
def api_client(services: Services, **kwargs: Any) -> Iterator[TestClient]:
    """A TestClient of ``api_app(services)``; ``kwargs`` go to TestClient (headers, ...)."""
    with TestClient(api_app(services), **kwargs) as client:
        yield client
