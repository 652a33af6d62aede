"""Voice routes: a spoken question in, its transcript and an answer out (and the answer spoken
back with ``?speak=true``); and plain transcription for the dashboard's microphone button.

The audio is the request body: raw (any ``Content-Type``, e.g. ``audio/wav``, ``audio/ogg``,
``audio/webm``) or ``multipart/form-data`` with a file field ``audio``. Its container is
recognised by its first bytes, whatever the client claims. Audio that is not WAV/OGG/WebM,
does not decode, is too short or too long, is silent, or holds no speech gets a 422 naming the
reason, as a FastAPI validation error at ``body.audio``; a body over the limit gets a 413.

Spoken answers come back in the JSON, base64-encoded (``audio.data``, a 16-bit mono WAV): one
response a browser can both read and play (``new Audio("data:audio/wav;base64," + data)``).

The answer comes from one seam, :func:`get_answerer`: the ask service (``POST /api/v1/ask``),
within the caller's cameras.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sentinel.api.ask import AskAnswer, CitationPublic, answer_question
from sentinel.api.deps import Services, ServicesDep, VoiceServices
from sentinel.api.security import authorize
from sentinel.api.uploads import invalid_upload, read_upload
from sentinel.gateway.roles import EVENTS_READ, Principal
from sentinel.search.voice import (
    Audio,
    VoiceInputError,
    VoiceUnavailableError,
    speak,
    transcribe_upload,
)

router = APIRouter(tags=["voice"])

_BINARY = {"type": "string", "format": "binary"}
AUDIO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The audio (WAV, OGG or WebM; recognised by its first bytes), raw or as "
        "the multipart file field `audio`.",
        "content": {
            "application/octet-stream": {"schema": _BINARY},
            "audio/wav": {"schema": _BINARY},
            "audio/ogg": {"schema": _BINARY},
            "audio/webm": {"schema": _BINARY},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"audio": _BINARY},
                    "required": ["audio"],
                }
            },
        },
    }
}


AudioFormat = Literal["wav", "ogg", "webm"]


class TranscriptPublic(BaseModel):
    text: str = Field(description="What was said.")
    language: str = Field(description="The language decoded.")
    format: AudioFormat = Field(description="The container received.")
    codec: str = Field(description="The audio codec received (pcm_s16le, opus, …).")
    duration_s: float = Field(description="Seconds of audio received.")
    speech_s: float = Field(description="Seconds of it that sounded like a voice.")
    seconds: float = Field(description="Seconds the recognition took.")


class SpokenAudio(BaseModel):
    media_type: Literal["audio/wav"] = "audio/wav"
    encoding: Literal["base64"] = "base64"
    data: str = Field(description="The WAV file (16-bit mono PCM), base64-encoded.")
    duration_s: float


class VoiceAskResponse(BaseModel):
    transcript: TranscriptPublic
    answer: str = Field(description="The answer, in words.")
    mode: Literal["llm", "retrieval_only", "nothing_found"] = Field(
        description="As POST /ask's mode."
    )
    citations: list[CitationPublic] = Field(description="The items the answer rests on.")
    count: dict[str, Any] | None = Field(None, description="As POST /ask's count.")
    audio: SpokenAudio | None = Field(
        None, description="The answer spoken (with ?speak=true), else null."
    )


Answerer = Callable[[str, Principal], Awaitable[AskAnswer]]
"""Answers a question for a principal (who may only see some cameras)."""


def get_answerer(services: ServicesDep) -> Answerer:
    """The answering seam of ``POST /ask/voice``: the ask service (``POST /ask``: search,
    counts and the knowledge base within the caller's cameras, the agent's LLM when it
    runs)."""

    async def answer(question: str, principal: Principal) -> AskAnswer:
        return await answer_question(services, question, principal)

    return answer


AnswererDep = Annotated[Answerer, Depends(get_answerer)]


def _voice(services: Services) -> VoiceServices:
    found = services.voice
    if found is None:
        raise HTTPException(404, "voice is not enabled (settings: voice.enabled)")
    return found


def _invalid(msg: str, kind: str = "value_error") -> RequestValidationError:
    return invalid_upload("audio", msg, kind)


async def read_audio(request: Request, limit: int) -> bytes:
    """The audio of the request: the multipart file field ``audio``, or the raw body (422 when
    missing or malformed, 413 over ``limit`` bytes)."""
    return await read_upload(request, limit, field="audio", what="audio", send="WAV, OGG or WebM")


async def _transcribe(request: Request, voice: VoiceServices) -> tuple[Audio, TranscriptPublic]:
    data = await read_audio(request, voice.limits.max_bytes)
    try:
        audio, transcript = await transcribe_upload(data, voice.limits, voice.recognize)
    except VoiceInputError as exc:
        raise _invalid(str(exc)) from exc
    except VoiceUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc
    return audio, TranscriptPublic(
        text=transcript.text,
        language=transcript.language,
        format=cast(AudioFormat, audio.format),  # one of FORMATS by construction
        codec=audio.codec,
        duration_s=audio.duration_s,
        speech_s=transcript.speech_s,
        seconds=transcript.seconds,
    )


def _wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return round(wav.getnframes() / wav.getframerate(), 3)


@router.post(
    "/transcribe",
    response_model=TranscriptPublic,
    summary="Transcribe speech",
    openapi_extra=AUDIO_BODY,
    responses={413: {"description": "The audio is over the size limit."}},
)
async def transcribe(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
) -> TranscriptPublic:
    """The words spoken in the audio (WAV, OGG or WebM). 422 with the reason for audio that
    is not a known format, does not decode, is too short or too long, or holds no speech."""
    voice = _voice(services)
    _, transcript = await _transcribe(request, voice)
    return transcript


@router.post(
    "/ask/voice",
    response_model=VoiceAskResponse,
    summary="Ask a question by voice",
    openapi_extra=AUDIO_BODY,
    responses={413: {"description": "The audio is over the size limit."}},
)
async def ask_voice(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Security(authorize, scopes=[EVENTS_READ])],
    answerer: AnswererDep,
    speak_answer: Annotated[
        bool,
        Query(alias="speak", description="Also return the answer as speech (base64 WAV)."),
    ] = False,
) -> VoiceAskResponse:
    """Transcribes the spoken question and answers it from the history of the cameras the
    caller may see, with citations; with `speak=true` the answer also comes back as a WAV
    (base64 in `audio.data`). 422 with the reason for audio that is not usable speech."""
    voice = _voice(services)
    _, transcript = await _transcribe(request, voice)
    try:
        result = await answerer(transcript.text, principal)
    except ValueError as exc:  # nothing usable was said
        raise RequestValidationError(
            [{"loc": ("body", "audio"), "msg": f"no question heard: {exc}", "type": "value_error"}]
        ) from exc
    audio = None
    if speak_answer and result.answer.strip():
        try:
            wav = await run_in_threadpool(
                speak, result.answer, voice=voice.speak_voice, timeout_s=voice.speak_timeout_s
            )
        except VoiceUnavailableError as exc:
            raise HTTPException(503, f"the answer cannot be spoken: {exc}") from exc
        audio = SpokenAudio(
            data=base64.b64encode(wav).decode("ascii"), duration_s=_wav_seconds(wav)
        )
    return VoiceAskResponse(
        transcript=transcript,
        answer=result.answer,
        mode=result.mode,
        citations=result.citations,
        count=result.count,
        audio=audio,
    )
