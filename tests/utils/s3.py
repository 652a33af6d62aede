"""Object store fixtures: every object store test runs on the local folder and on S3 (moto).

Register in ``tests/conftest.py`` with ``pytest_plugins = ["tests.utils.s3"]``, then ask for:

- ``s3_server``: the endpoint URL (``http://127.0.0.1:<port>``) of one moto S3 server started
  in-process for the session (``moto.server.ThreadedMotoServer``, a real HTTP server). If it
  cannot start, the tests that need it fail with an error saying why: they are never skipped.
- ``s3_client``: a boto3 S3 client on that server, shared by the session.
- ``object_store``: a fresh ``ObjectStore``, parametrized ``[local]`` (a folder under
  ``tmp_path``) and ``[s3]`` (a bucket of its own, with the key prefix ``sentinel``, emptied
  and deleted afterwards).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sentinel.store.objects import LocalObjectStore, ObjectStore
from sentinel.store.s3 import S3ObjectStore

S3_ACCESS_KEY = "sentinel-test-access"
S3_SECRET_KEY = "sentinel-test-secret"  # moto accepts any credentials
S3_REGION = "us-east-1"
S3_PREFIX = "sentinel"
START_TIMEOUT_S = 30.0


def s3_test_client(endpoint_url: str, *, max_attempts: int = 3) -> Any:
    """A boto3 S3 client on ``endpoint_url`` with the test credentials (path-style)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            retries={"mode": "standard", "max_attempts": max_attempts},
        ),
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1 (a free port), for the session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.fail(
            f"moto's server is not installed ({exc}); install it with "
            "`pip install 'moto[server]'` (it is in the dev extra).",
            pytrace=False,
        )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:
            errors.append(exc)

    # ``start`` waits for the server thread, forever if binding fails: bound the wait.
    starter = threading.Thread(target=start, name="moto-start", daemon=True)
    starter.start()
    starter.join(START_TIMEOUT_S)
    if starter.is_alive() or errors:
        why = repr(errors[0]) if errors else f"not listening after {START_TIMEOUT_S:.0f}s"
        pytest.fail(f"the moto S3 server could not start on 127.0.0.1: {why}", pytrace=False)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        s3_test_client(endpoint, max_attempts=1).list_buckets()
    except Exception as exc:
        server.stop()
        pytest.fail(f"the moto S3 server at {endpoint} does not answer: {exc!r}", pytrace=False)
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_server: str) -> Any:
    """A boto3 S3 client on the session's moto server (shared: register no event hooks)."""
    return s3_test_client(s3_server)


def empty_and_delete_bucket(client: Any, bucket: str) -> None:
    """Delete every object (and version) of ``bucket``, then the bucket."""
    while True:  # first pages until empty: paging on while deleting skips keys
        page = client.list_object_versions(Bucket=bucket, MaxKeys=1000)
        items = page.get("Versions", []) + page.get("DeleteMarkers", [])
        if not items:
            break
        objects = [{"Key": item["Key"], "VersionId": item["VersionId"]} for item in items]
        client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(params=["local", "s3"])
def object_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """A fresh, empty object store, once local and once on S3 (see the module docstring)."""
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "objects")
        return
    client: Any = request.getfixturevalue("s3_client")
    bucket = f"sentinel-test-{uuid.uuid4().hex[:16]}"
    store = S3ObjectStore(bucket, prefix=S3_PREFIX, client=client)
    store.ensure_bucket()
    try:
        yield store
    finally:
        empty_and_delete_bucket(client, bucket)
