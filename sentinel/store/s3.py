"""An ``ObjectStore`` over S3 or an S3-compatible service (MinIO, Ceph RGW, moto, ...).

``S3ObjectStore`` keeps the contract of ``LocalObjectStore`` (key validation, ``ObjectNotFound``,
idempotent deletes); other failures raise ``ObjectStoreError``, whose message names the operation
and the object, never the credentials. ``make_object_store`` builds the configured store.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Literal, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ConfigDict, Field, SecretStr, model_validator

from sentinel.domain.strict import StrictModel
from sentinel.store.envelope import EncryptedObjectStore
from sentinel.store.object_keys import master_keys
from sentinel.store.objects import (
    MAX_KEY_LENGTH,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    validate_key,
    validate_prefix,
)

log = logging.getLogger(__name__)

# Error codes meaning "no such object" (a HEAD response has no body, hence the bare status).
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class ObjectStoreError(RuntimeError):
    """An object store failed for a reason other than a missing object."""


class ObjectEncryptionSettings(StrictModel):
    """Encryption at rest of the objects (an AES-256-GCM envelope, ``sentinel.store.envelope``).

    Attributes:
        enabled: Encrypt new objects; ``None``: on for S3, off for the local folder. Objects
            stored before it was on stay readable.
        master_keys: base64 AES-256 master keys, newest first (the first wraps new objects'
            data keys, all of them unwrap); e.g. ``SENTINEL_OBJECTS__ENCRYPTION__MASTER_KEYS=
            '["..."]'`` from a secret. Empty: the key file.
        key_file: A file of such keys, one a line, newest first (mode 0600); ``None``:
            ``<data dir>/keys/objects.key``, created with one random key at first use.
        chunk_size: Plaintext bytes per encrypted chunk (a Range read decrypts whole chunks).
    """

    # Validation errors must not quote the input: it holds master keys.
    model_config = ConfigDict(hide_input_in_errors=True)

    enabled: bool | None = Field(
        None, description="Encrypt objects at rest; null: on for s3, off for local."
    )
    master_keys: list[SecretStr] = Field(
        default_factory=list,
        max_length=16,
        description="base64 AES-256 master keys, newest first; empty: key_file.",
    )
    key_file: Path | None = Field(
        None, description="File of base64 master keys, newest first; default keys/objects.key."
    )
    chunk_size: int = Field(
        64 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="Plaintext bytes per encrypted chunk; a Range read decrypts whole chunks.",
    )

    # The keys are checked when the store is made (``master_keys``), not here: pydantic's
    # errors repeat their input, which would put a malformed key in a log.

    def active(self, kind: str) -> bool:
        """Whether objects of a ``kind`` store are encrypted."""
        return self.enabled if self.enabled is not None else kind == "s3"


class ObjectStoreSettings(StrictModel):
    """Where objects (snapshots, recordings, datasets) are stored.

    Attributes:
        kind: ``"local"`` (a folder in the data dir) or ``"s3"``.
        bucket: The S3 bucket; required for ``"s3"``.
        prefix: A key prefix inside the bucket (``"sentinel/prod"``), ``""`` for none.
        endpoint_url: An S3-compatible endpoint; ``None`` for AWS.
        region: The bucket's region.
        access_key: The access key id; ``None`` for boto3's default credential chain.
        secret_key: The secret access key; ``None`` for boto3's default credential chain.
        storage_class: The S3 storage class of every object put (``"STANDARD_IA"``); ``None``:
            the bucket's default. Ignored by the local store.
        encryption: Encryption at rest (on by default for S3).
    """

    # Validation errors must not quote the input: it holds the secret key and master keys.
    model_config = ConfigDict(hide_input_in_errors=True)

    kind: Literal["local", "s3"] = "local"
    bucket: str | None = Field(None, min_length=3, max_length=63)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: SecretStr | None = None
    storage_class: str | None = Field(
        None,
        pattern=r"^[A-Z_]{1,32}$",
        description="The S3 storage class of new objects (STANDARD_IA, ...); null: the bucket's.",
    )
    encryption: ObjectEncryptionSettings = Field(default_factory=ObjectEncryptionSettings)

    @model_validator(mode="after")
    def _check(self) -> ObjectStoreSettings:
        if self.kind == "s3" and not self.bucket:
            raise ValueError("objects.bucket is required when objects.kind is 's3'")
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("set both objects.access_key and objects.secret_key, or neither")
        if self.prefix.strip("/"):
            validate_key(self.prefix.strip("/"))
        return self


def make_object_store(settings: ObjectStoreSettings, data_dir: Path) -> ObjectStore:
    """Build the object store that ``settings`` describe.

    Args:
        settings: The object store settings.
        data_dir: Sentinel's data dir; the local store lives in ``<data_dir>/objects``.

    Returns:
        A ``LocalObjectStore`` or an ``S3ObjectStore`` (whose bucket is not checked here; call
        ``ensure_bucket`` at startup to create it or fail early), inside an
        ``EncryptedObjectStore`` when ``settings.encryption`` is active.

    Raises:
        KeyFileError: If encryption is on and the key file cannot be used.
        ValueError: If a configured master key is not base64 of 32 bytes.
    """
    store = _plain_store(settings, data_dir)
    enc = settings.encryption
    if not enc.active(settings.kind):
        return store
    keys = master_keys([k.get_secret_value() for k in enc.master_keys], enc.key_file, data_dir)
    return EncryptedObjectStore(store, keys, chunk_size=enc.chunk_size)


def _plain_store(settings: ObjectStoreSettings, data_dir: Path) -> ObjectStore:
    if settings.kind == "local":
        return LocalObjectStore(data_dir / "objects")
    assert settings.bucket is not None  # checked by the model
    return S3ObjectStore(
        settings.bucket,
        prefix=settings.prefix,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        access_key=settings.access_key,
        secret_key=settings.secret_key.get_secret_value() if settings.secret_key else None,
        storage_class=settings.storage_class,
    )


def make_s3_client(
    endpoint_url: str | None, region: str, access_key: str | None, secret_key: str | None
) -> Any:
    """A boto3 S3 client (path-style addressing on a custom endpoint, bounded retries)."""
    config = Config(
        connect_timeout=5,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


class S3ObjectStore:
    """An ``ObjectStore`` over an S3 bucket; keys are stored as ``<prefix>/<key>``.

    S3 writes are atomic per object, so ``put`` needs no temporary object. Unlike the local
    store, S3 has no folders: a key may be both an object and the prefix of other objects.
    Every method raises ``ValueError`` for an invalid key and ``ObjectStoreError`` when S3
    fails (a missing bucket included); ``get`` and ``size`` raise ``ObjectNotFound``.

    Args:
        bucket: The bucket name.
        prefix: A key prefix for every object (``"sentinel/prod"``); ``""`` for none.
        endpoint_url: An S3-compatible endpoint (path-style addressing); ``None`` for AWS.
        region: The region of the bucket (and of new buckets).
        access_key: The access key id; ``None`` for boto3's default credential chain.
        secret_key: The secret access key; ``None`` for boto3's default credential chain.
        client: A ready boto3 S3 client; when given, the connection arguments are ignored.
        storage_class: The storage class of every object put; ``None``: the bucket's default.

    Raises:
        ValueError: If the prefix is not a valid key.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        client: Any | None = None,
        storage_class: str | None = None,
    ) -> None:
        prefix = prefix.strip("/")
        self._extra_put: dict[str, Any] = {"StorageClass": storage_class} if storage_class else {}
        self._prefix = validate_key(prefix) + "/" if prefix else ""
        self._bucket = bucket
        self._region = region
        self._secrets = [s for s in (access_key, secret_key) if s]
        self._bucket_seen = False
        if client is None:
            client = make_s3_client(endpoint_url, region, access_key, secret_key)
        self._client = client

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def client(self) -> Any:
        """The boto3 S3 client."""
        return self._client

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist.

        Raises:
            ObjectStoreError: If the bucket cannot be checked or created (e.g. it belongs to
                someone else, or the credentials are refused).
        """
        if self._bucket_call("head_bucket", {"404", "NoSuchBucket", "NotFound"}):
            return
        config = {"LocationConstraint": self._region}
        kwargs = {"CreateBucketConfiguration": config} if self._region != "us-east-1" else {}
        if self._bucket_call("create_bucket", {"BucketAlreadyOwnedByYou"}, **kwargs):
            log.info("created S3 bucket %s", self._bucket)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` with its ``Content-Type``, replacing any old object."""
        self._call("put_object", key, Body=bytes(data), ContentType=content_type, **self._extra_put)

    def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``; raise ``ObjectNotFound`` if there are none."""
        response = self._call("get_object", key, found=True)
        try:
            body: bytes = response["Body"].read()
        except BotoCoreError as exc:
            self._fail("get_object", self._name(key), exc)
        return body

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object under ``key``, cut at its end (one ranged GET).

        Raises:
            ValueError: If the key is invalid, ``start < 0`` or ``stop < start``.
            ObjectNotFound: If there is no object under ``key``.
        """
        if start < 0 or stop < start:
            raise ValueError(f"bad range [{start}, {stop})")
        if start == stop:  # S3 has no empty range; still say whether the object exists
            self._call("head_object", key, found=True)
            return b""
        try:
            response = self._call("get_object", key, found=True, Range=f"bytes={start}-{stop - 1}")
        except ObjectStoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) == "InvalidRange":
                return b""  # the object exists and ends at or before ``start``
            raise
        try:
            body: bytes = response["Body"].read()
        except BotoCoreError as exc:
            self._fail("get_object", self._name(key), exc)
        return body

    def delete(self, key: str) -> None:
        """Delete the object under ``key``; a missing key is not an error."""
        self._call("delete_object", key)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self._call("head_object", key, found=True)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        """The size in bytes of the object under ``key``; raise ``ObjectNotFound`` if none."""
        return int(self._call("head_object", key, found=True)["ContentLength"])

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Yield ``(key, size)`` of the objects whose keys start with ``prefix``, in key order.

        Listing is paginated (1000 keys a request). Keys in the bucket that are not valid object
        keys (``dir/`` markers, keys written by other tools) are skipped.

        Args:
            prefix: A plain string prefix of the keys (``""``: every object of the store).

        Returns:
            An iterator of ``(key, size in bytes)`` pairs.

        Raises:
            ValueError: If the prefix is invalid, at once.
            ObjectStoreError: If S3 fails, while iterating.
        """
        return self._list(self._prefix + validate_prefix(prefix))

    def _list(self, full_prefix: str) -> Iterator[tuple[str, int]]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=full_prefix):
                self._bucket_seen = True
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self._prefix) :]
                    try:
                        validate_key(key)
                    except ValueError:
                        log.debug("skipping S3 key %r: not a valid object key", item["Key"])
                        continue
                    yield key, int(item["Size"])
        except (ClientError, BotoCoreError) as exc:
            self._fail("list_objects_v2", full_prefix, exc)

    def _name(self, key: str) -> str:
        """The S3 key of ``key``."""
        name = self._prefix + validate_key(key)
        if len(name.encode()) > MAX_KEY_LENGTH:
            raise ValueError(f"object key with its prefix must be at most {MAX_KEY_LENGTH} bytes")
        return name

    def _call(self, op: str, key: str, *, found: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Return the response of client method ``op`` on ``key``, mapping the errors.

        With ``found``, a missing object raises ``ObjectNotFound``. A bare 404 (HEAD responses
        have no body) could also mean a missing bucket: until a call succeeds, it is checked.
        """
        name = self._name(key)
        try:
            response: dict[str, Any] = getattr(self._client, op)(
                Bucket=self._bucket, Key=name, **kwargs
            )
        except ClientError as exc:
            code = _code(exc)
            if not found or code not in _MISSING_KEY_CODES:
                self._fail(op, name, exc)
            if code != "NoSuchKey" and not self._bucket_seen:
                self._bucket_call("head_bucket")
            raise ObjectNotFound(key) from None
        except BotoCoreError as exc:
            self._fail(op, name, exc)
        self._bucket_seen = True
        return response

    def _bucket_call(self, op: str, tolerated: Collection[str] = (), **kwargs: Any) -> bool:
        """Call bucket method ``op``: True if it succeeds, False on a ``tolerated`` error code."""
        try:
            getattr(self._client, op)(Bucket=self._bucket, **kwargs)
        except ClientError as exc:
            if _code(exc) not in tolerated:
                self._fail(op, "", exc)
            return False
        except BotoCoreError as exc:
            self._fail(op, "", exc)
        self._bucket_seen = True
        return True

    def _fail(self, op: str, name: str, exc: Exception) -> NoReturn:
        """Raise ``ObjectStoreError`` for ``exc``, with any credential redacted."""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')}: {error.get('Message') or 'no message'}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        where = f"s3://{self._bucket}/{name}"
        raise ObjectStoreError(f"S3 {op} of {where} failed: {detail}") from exc


def _code(exc: ClientError) -> str:
    """The error code of a botocore ``ClientError`` (``"404"`` for a bodiless HEAD)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
