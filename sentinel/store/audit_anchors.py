"""Audit anchors in an S3 bucket with Object Lock: written once, locked in COMPLIANCE mode.

Each anchor is one small JSON object, ``<prefix>/<seq, 20 digits>.json`` (see
``sentinel.gateway.audit_anchor``), put with ``ObjectLockMode=COMPLIANCE`` and a retain-until
date ``retention_days`` ahead: until then S3 refuses to delete that version or shorten its
lock, whoever asks (the bucket's owner and the root account included). The bucket must have
been created with Object Lock enabled, which also turns versioning on: a later PUT to the same
key adds a version and a DELETE without a version id adds a delete marker, but neither touches
the locked version, and :meth:`S3AnchorStore.read_all` reads every version, not only the
current one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, SecretStr, model_validator

from sentinel.domain.strict import StrictModel
from sentinel.gateway.audit_anchor import Anchor, AnchorClaim, decode_anchor, encode_anchor
from sentinel.store.objects import validate_key
from sentinel.store.s3 import make_s3_client

__all__ = [
    "AnchorExistsError",
    "AnchorStoreError",
    "AnchorsRead",
    "AuditAnchorSettings",
    "S3AnchorStore",
    "make_anchor_store",
]

log = logging.getLogger(__name__)

LOCK_MODE = "COMPLIANCE"
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class AnchorStoreError(RuntimeError):
    """The anchor bucket failed, or is not fit to hold anchors (no Object Lock)."""


class AnchorExistsError(AnchorStoreError):
    """An anchor of that entry is already in the bucket (anchors are never replaced)."""


class AuditAnchorSettings(StrictModel):
    """Where and how often the audit chain's head is anchored (off unless a bucket is set).

    Use a bucket of its own, ideally with credentials the platform's database writers do not
    hold: Object Lock keeps written anchors, but whoever can write the bucket can add bogus
    ones (a false alarm, never a hidden alteration).
    """

    enabled: bool = Field(False, description="Anchor the audit chain's head to S3.")
    bucket: str | None = Field(
        None, min_length=3, max_length=63, description="The Object Lock bucket of the anchors."
    )
    prefix: str = Field("audit-anchors", description="Key prefix of the anchor objects.")
    endpoint_url: str | None = Field(None, description="An S3-compatible endpoint; null: AWS.")
    region: str = Field("us-east-1", description="The bucket's region.")
    access_key: str | None = Field(None, description="Access key id; null: boto3's chain.")
    secret_key: SecretStr | None = Field(None, description="Secret key; null: boto3's chain.")
    retention_days: int = Field(
        2557,
        ge=1,
        le=36500,
        description="Each anchor is locked (COMPLIANCE) this many days: nobody can delete it "
        "before. Default: 7 years.",
    )
    interval_s: float = Field(
        3600.0, ge=5, le=7 * 86400, description="Time between anchors (the retention actor)."
    )
    create_bucket: bool = Field(
        True, description="Create the bucket (with Object Lock) if it does not exist."
    )

    @model_validator(mode="after")
    def _check(self) -> AuditAnchorSettings:
        if self.enabled and not self.bucket:
            raise ValueError("audit_anchors.bucket is required when audit anchors are enabled")
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError(
                "set both audit_anchors.access_key and audit_anchors.secret_key, or neither"
            )
        validate_key(self.prefix.strip("/"))
        return self


@dataclass(frozen=True, slots=True)
class AnchorsRead:
    """Every anchor version in the bucket, and the objects that are not valid anchors."""

    anchors: list[Anchor]
    invalid: list[str]


def make_anchor_store(
    settings: AuditAnchorSettings | dict[str, Any] | None,
) -> S3AnchorStore | None:
    """The configured anchor store, None when anchoring is off (or not configured).

    Args:
        settings: The settings, or their plain-dict form (as actors receive them).
    """
    if settings is None:
        return None
    if isinstance(settings, dict):
        settings = AuditAnchorSettings(**settings)
    if not settings.enabled:
        return None
    assert settings.bucket is not None  # checked by the model
    client = make_s3_client(
        settings.endpoint_url,
        settings.region,
        settings.access_key,
        settings.secret_key.get_secret_value() if settings.secret_key else None,
    )
    return S3AnchorStore(
        client,
        settings.bucket,
        prefix=settings.prefix,
        retention_days=settings.retention_days,
        region=settings.region,
    )


class S3AnchorStore:
    """Writes and reads the audit anchors of one Object Lock bucket.

    Args:
        client: A boto3 S3 client.
        bucket: The bucket (created with Object Lock by :meth:`ensure_bucket` if missing).
        prefix: The key prefix of the anchors.
        retention_days: How long each anchor is locked in COMPLIANCE mode.
        region: The region of a bucket this store creates.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "audit-anchors",
        retention_days: int = 2557,
        region: str = "us-east-1",
    ) -> None:
        if retention_days < 1:
            raise ValueError(f"retention_days must be >= 1, but got {retention_days}")
        self._client = client
        self._bucket = bucket
        self._prefix = validate_key(prefix.strip("/")) + "/"
        self._retention = timedelta(days=retention_days)
        self._region = region

    @property
    def bucket(self) -> str:
        return self._bucket

    def key_of(self, seq: int) -> str:
        """The object key of the anchor of entry ``seq`` (zero-padded: keys sort by seq)."""
        return f"{self._prefix}{seq:020d}.json"

    def ensure_bucket(self, *, create: bool = True) -> None:
        """Checks that the bucket has Object Lock enabled; creates it so if missing.

        A new bucket also gets a default retention (COMPLIANCE, ``retention_days``), so even
        an object written without a lock of its own is locked.

        Raises:
            AnchorStoreError: The bucket is missing (and ``create`` is False), cannot be
                created, or has no Object Lock: anchors there could be deleted.
        """
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                self._fail("head_bucket", "", exc)
            if not create:
                raise AnchorStoreError(f"the anchor bucket {self._bucket} does not exist") from None
            self._create_bucket()
        except BotoCoreError as exc:
            self._fail("head_bucket", "", exc)
        try:
            config = self._client.get_object_lock_configuration(Bucket=self._bucket)
        except ClientError as exc:
            if _code(exc) != "ObjectLockConfigurationNotFoundError":
                self._fail("get_object_lock_configuration", "", exc)
            config = {}
        except BotoCoreError as exc:
            self._fail("get_object_lock_configuration", "", exc)
        enabled = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise AnchorStoreError(
                f"the anchor bucket {self._bucket} has no Object Lock: anchors there could be "
                "deleted (Object Lock can only be set when a bucket is created: use a new one)"
            )

    def _create_bucket(self) -> None:
        kwargs: dict[str, Any] = {"ObjectLockEnabledForBucket": True}
        if self._region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            self._client.create_bucket(Bucket=self._bucket, **kwargs)
            days = max(1, self._retention.days)
            self._client.put_object_lock_configuration(
                Bucket=self._bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": LOCK_MODE, "Days": days}},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            self._fail("create_bucket", "", exc)
        log.info("created the audit anchor bucket %s (Object Lock, COMPLIANCE)", self._bucket)

    def exists(self, seq: int) -> bool:
        """Whether an anchor of entry ``seq`` is in the bucket (its current version)."""
        key = self.key_of(seq)
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            self._fail("head_object", key, exc)
        except BotoCoreError as exc:
            self._fail("head_object", key, exc)
        return True

    def put(self, claim: AnchorClaim) -> Anchor:
        """Writes one anchor, locked in COMPLIANCE mode until ``claim.at`` + retention.

        The write is conditional (``If-None-Match: *``): an anchor is never replaced, not even
        by a new version of its key from this code.

        Raises:
            AnchorExistsError: The key holds an anchor already.
            AnchorStoreError: S3 refused or failed (the anchor may not exist).
        """
        key = self.key_of(claim.seq)
        until = claim.at.astimezone(UTC) + self._retention
        try:
            response = self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=encode_anchor(claim),
                ContentType="application/json",
                ObjectLockMode=LOCK_MODE,
                ObjectLockRetainUntilDate=until,
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) in {"PreconditionFailed", "412"}:
                raise AnchorExistsError(f"s3://{self._bucket}/{key} exists") from None
            self._fail("put_object", key, exc)
        except BotoCoreError as exc:
            self._fail("put_object", key, exc)
        version = response.get("VersionId")
        return Anchor(claim, self._source(key, version), LOCK_MODE, until)

    def latest(self) -> Anchor | None:
        """The anchor of the highest seq (its current version), None if there is none.

        Raises:
            AnchorStoreError: S3 failed, or the newest anchor object is not a valid anchor.
        """
        newest: str | None = None
        for key in self._keys():
            newest = key  # keys are listed in order, and zero-padded seqs sort numerically
        if newest is None:
            return None
        anchor = self._read(newest, None)
        if isinstance(anchor, str):
            raise AnchorStoreError(anchor)
        return anchor

    def read_all(self) -> AnchorsRead:
        """Every version of every anchor object (delete markers and overwrites hide none);
        none while the bucket does not exist yet.

        Raises:
            AnchorStoreError: S3 failed.
        """
        anchors: list[Anchor] = []
        invalid: list[str] = []
        paginator = self._client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for version in page.get("Versions", ()):
                    got = self._read(version["Key"], version.get("VersionId"))
                    if isinstance(got, str):
                        invalid.append(got)
                    else:
                        anchors.append(got)
        except ClientError as exc:
            if _code(exc) != "NoSuchBucket":  # none yet: the first anchoring creates it
                self._fail("list_object_versions", self._prefix, exc)
        except BotoCoreError as exc:
            self._fail("list_object_versions", self._prefix, exc)
        return AnchorsRead(anchors, invalid)

    def _keys(self) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for item in page.get("Contents", ()):
                    yield str(item["Key"])
        except (ClientError, BotoCoreError) as exc:
            self._fail("list_objects_v2", self._prefix, exc)

    def _read(self, key: str, version: str | None) -> Anchor | str:
        """The anchor in ``key`` (at ``version``), or why it is not one."""
        source = self._source(key, version)
        kwargs = {"VersionId": version} if version and version != "null" else {}
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key, **kwargs)
            body: bytes = response["Body"].read(64 * 1024)
        except (ClientError, BotoCoreError) as exc:
            self._fail("get_object", key, exc)
        try:
            claim = decode_anchor(body)
        except ValueError as exc:
            return f"{source}: {exc}"
        if key != self.key_of(claim.seq):
            return f"{source}: holds the anchor of entry {claim.seq}, not of its key's entry"
        until = response.get("ObjectLockRetainUntilDate")
        return Anchor(
            claim,
            source,
            response.get("ObjectLockMode"),
            until.astimezone(UTC) if isinstance(until, datetime) else None,
        )

    def _source(self, key: str, version: str | None) -> str:
        where = f"s3://{self._bucket}/{key}"
        return f"{where}?versionId={version}" if version and version != "null" else where

    def _fail(self, op: str, key: str, exc: Exception) -> NoReturn:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')}: {error.get('Message') or 'no message'}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        raise AnchorStoreError(f"S3 {op} of s3://{self._bucket}/{key} failed: {detail}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
