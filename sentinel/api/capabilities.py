"""``GET /api/v1/capabilities``: which optional services this server runs, for the dashboard.

Any signed-in principal may ask; the answer is presence only (booleans and the version), never
a setting's value, a path or a host name.
"""

from __future__ import annotations

import shutil
from typing import Annotated

from fastapi import APIRouter, Security
from pydantic import BaseModel, Field

from sentinel import __version__
from sentinel.api.deps import Services, ServicesDep
from sentinel.api.security import authorize
from sentinel.gateway.roles import Principal

router = APIRouter(tags=["capabilities"])


class Capabilities(BaseModel):
    """What this server offers; ``false``: that service is off (its routes answer 404/503)."""

    version: str = Field(description="The server's version.")
    search: bool = Field(description="Semantic search over events (/search, /events/{id}/similar).")
    ask: bool = Field(description="Questions answered from the events (/search/ask).")
    kb: bool = Field(description="The knowledge base (/kb).")
    voice: bool = Field(description="Voice questions and transcription (/ask/voice).")
    speech: bool = Field(description="Answers spoken back (?speak=true on /ask/voice).")
    recordings: bool = Field(description="Recorded segments and playback (/recordings).")
    exports: bool = Field(description="Evidence exports (/exports).")
    storage: bool = Field(description="The retention sweeper's status (/storage).")
    archive: bool = Field(description="Archived footage plays back (tiering).")
    notify: bool = Field(description="Notification channels and rules (/notify).")
    push: bool = Field(description="Browser (Web Push) notifications (/push).")
    annotation: bool = Field(description="The annotation queue and datasets (/annotation).")
    faces: bool = Field(description="Face search (/faces).")
    privacy: bool = Field(description="Privacy and subject requests (/privacy, /subjects).")
    audit_anchors: bool = Field(description="Audit log anchoring.")
    models: bool = Field(description="Model serving control (/models).")
    training: bool = Field(description="Training runs (/training).")
    mining: bool = Field(description="Hard-example mining (/annotation/mine).")
    live: bool = Field(description="Live updates over WebSocket (/live).")


def capabilities_of(services: Services) -> Capabilities:
    """The presence of each optional service in ``services``."""
    search = services.search
    notify = services.notify
    return Capabilities(
        version=__version__,
        search=search is not None,
        ask=search is not None,
        kb=search is not None and search.kb is not None,
        voice=services.voice is not None,
        speech=services.voice is not None and shutil.which("espeak-ng") is not None,
        recordings=services.segments is not None,
        exports=services.exports is not None,
        storage=services.storage is not None,
        archive=services.archive is not None,
        notify=notify is not None,
        push=notify is not None and notify.vapid is not None and notify.settings.push_enabled,
        annotation=services.annotation is not None,
        faces=services.faces is not None,
        privacy=True,
        audit_anchors=services.audit_anchors is not None,
        models=services.models is not None,
        training=services.training is not None,
        mining=services.mining is not None,
        live=True,
    )


@router.get("/capabilities", response_model=Capabilities, summary="What this server offers")
async def capabilities(
    services: ServicesDep, principal: Annotated[Principal, Security(authorize)]
) -> Capabilities:
    return capabilities_of(services)
