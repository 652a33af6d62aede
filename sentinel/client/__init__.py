"""The typed Python client of Sentinel's HTTP API (used by the CLI and the notebooks).

``SentinelClient`` blocks; ``AsyncSentinelClient`` is the same surface for asyncio. Both sign
in with a username and password (renewing tokens as they expire), an API key or an access
token, page through lists by cursor (``iter_events``, ``iter_incidents``, ``iter_alerts``),
return the API's own response models, and raise ``SentinelAPIError`` (status + detail) on
errors. ``to_pandas`` turns a list of them into a DataFrame.
"""

from sentinel.client._auth import Credentials
from sentinel.client.aio import AsyncSentinelClient
from sentinel.client.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    SentinelAPIError,
    SentinelConnectionError,
    SentinelError,
)
from sentinel.client.frames import to_pandas
from sentinel.client.sync import SentinelClient

__all__ = [
    "AsyncSentinelClient",
    "AuthenticationError",
    "ConflictError",
    "Credentials",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "SentinelAPIError",
    "SentinelClient",
    "SentinelConnectionError",
    "SentinelError",
    "to_pandas",
]
