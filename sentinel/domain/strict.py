"""The one strict pydantic base: operator config, API request bodies, storage settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Input from people: unknown keys are errors and validated values are frozen.

    A typo (``detect_fsp``, ``rol``) is rejected instead of silently ignored, and a validated
    value cannot be changed behind its validators' back. It lives in the domain (it holds no
    I/O) so that every layer, the store's settings included, can share it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
