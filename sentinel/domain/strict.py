"""The one strict pydantic base: operator config, API request bodies, storage settings."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["StrictModel", "TimeZoneName", "check_timezone"]


def check_timezone(value: str) -> str:
    """``value`` when it names an IANA time zone (``Europe/Berlin``, ``UTC``).

    Raises:
        ValueError: It names none.
    """
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"timezone must be an IANA name such as Europe/Berlin, but got {value!r}"
        ) from exc
    return value


TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_timezone)]
"""A field holding an IANA time zone name, checked when validated."""


class StrictModel(BaseModel):
    """Input from people: unknown keys are errors and validated values are frozen.

    A typo (``detect_fsp``, ``rol``) is rejected instead of silently ignored, and a validated
    value cannot be changed behind its validators' back. It lives in the domain (it holds no
    I/O) so that every layer, the store's settings included, can share it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
