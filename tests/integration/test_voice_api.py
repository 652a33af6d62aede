"""Voice through the HTTP API with the real Whisper model, the real embedder and a real index:
questions spoken by espeak-ng are transcribed and answered within the caller's cameras, the
answer comes back spoken on request, and audio that is not speech is a 422 with the reason."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api import voice as voice_api
from sentinel.api.ask import AskAnswer
from sentinel.api.deps import SearchServices, Services, VoiceServices
from sentinel.api.voice import get_answerer
from sentinel.gateway.roles import Principal, Role
from sentinel.models.embedder import TextEmbedder
from sentinel.models.whisper import SpeechRecognizer, Transcript
from sentinel.search.ask import NOTHING_FOUND
from sentinel.search.index import APPEARANCE, VectorIndex
from sentinel.search.service import SearchService
from sentinel.search.voice import (
    AudioLimits,
    VoiceUnavailableError,
    on_a_thread,
    word_error_rate,
)
from sentinel.store.alert_repo import AlertRepository
from sentinel.store.db import sqlite_url
from sentinel.store.incident_repo import IncidentRepository
from sentinel.store.search_queue_repo import SearchQueue
from tests.integration.test_search_api import GREEN, RED, WHITE, _event
from tests.utils.api import api_app
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import make_services
from tests.utils.speech import (
    QUERIES,
    encode,
    espeak_wav,
    noise_wav,
    pcm_wav,
    silence_wav,
    wav_samples,
)

SPOKEN = "show me a person in a red top walking left"
MAX_WER = 0.25  # per spoken question through the route (espeak-ng's voice, Whisper base)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: voice adds no storage of its own, and the search it answers from is tested
    on both databases in test_search_api.py (each transcription costs seconds here)."""
    return sqlite_url(tmp_path / "db" / "sentinel.db")


@pytest.fixture(scope="module")
def recognizer(whisper_model: Path) -> SpeechRecognizer:
    return SpeechRecognizer(whisper_model, pinned=True, threads=2)


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(threads=1)


@pytest.fixture(scope="module")
def question() -> bytes:
    return espeak_wav(SPOKEN)


@pytest.fixture
def services(
    store_engine: Engine, tmp_path: Path, embedder: TextEmbedder, recognizer: SpeechRecognizer
) -> Services:
    services = make_services(store_engine, tmp_path)
    services.search = SearchServices(
        SearchService(
            VectorIndex(tmp_path / "search"),
            embedder.embed,
            events=services.events,
            incidents=IncidentRepository(store_engine),
            cameras=services.cameras,
            queue=SearchQueue(store_engine),
            alerts=AlertRepository(store_engine),
            objects=services.objects,
            appearance=VectorIndex(tmp_path / "search", collection=APPEARANCE),
        )
    )
    services.voice = VoiceServices(on_a_thread(recognizer))
    return services


@pytest.fixture
def seeded(services: Services) -> Services:
    services.cameras.upsert("gate", {"id": "gate", "source": "/v/gate.mp4", "groups": ["front"]})
    services.cameras.upsert("dock", {"id": "dock", "source": "/v/dock.mp4", "groups": ["back"]})
    for i in range(4):
        _event(services, f"gate-{i}", "gate", RED, i)
    for i in range(3):
        _event(services, f"dock-{i}", "dock", GREEN if i % 2 else WHITE, i)
    assert services.search is not None
    assert services.search.service.drain() == 7
    return services


@pytest.fixture
def admin(services: Services) -> AuthedUser:
    return add_user(services.security, "root", Role.ADMIN)


def _ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_transcribes_spoken_questions(client: TestClient, admin: AuthedUser) -> None:
    rates = []
    for text in QUERIES[:6]:
        body = _ok(
            client.post(
                "/api/v1/transcribe",
                content=espeak_wav(text),
                headers={**admin.headers, "Content-Type": "audio/wav"},
            )
        )
        assert body["format"] == "wav" and body["codec"] == "pcm_s16le"
        assert body["language"] == "en" and body["duration_s"] > 1.5
        assert 0 < body["speech_s"] <= body["duration_s"]
        rates.append(word_error_rate(text, body["text"]))
    assert max(rates) <= 0.5, rates
    assert sum(rates) / len(rates) <= MAX_WER, rates


def test_ask_voice_answers_with_citations_within_the_callers_cameras(
    seeded: Services, client: TestClient, admin: AuthedUser, question: bytes
) -> None:
    body = _ok(client.post("/api/v1/ask/voice", content=question, headers=admin.headers))
    assert word_error_rate(SPOKEN, body["transcript"]["text"]) <= MAX_WER, body["transcript"]
    cited = body["citations"]
    assert [c["camera_id"] for c in cited[:3]] == ["gate"] * 3  # the red tops rank first
    assert "wearing red top" in cited[0]["text"]
    # The ask service answers (no LLM here: the sources as found, numbered as cited).
    assert body["mode"] == "retrieval_only"
    assert body["answer"].startswith("Sources found:\n[1] ")
    assert body["audio"] is None

    # A user limited to the dock gets the dock's events (k of them), never the gate's.
    dock_user = add_user(seeded.security, "docker", Role.VIEWER, ["group:back"])
    limited = _ok(
        client.post(
            "/api/v1/ask/voice",
            files={"audio": ("question.wav", question, "audio/wav")},
            headers=dock_user.headers,
        )
    )
    assert limited["citations"]
    assert {c["camera_id"] for c in limited["citations"]} == {"dock"}
    assert "gate" not in limited["answer"]


def test_nothing_indexed_is_said_not_invented(
    services: Services, client: TestClient, admin: AuthedUser, question: bytes
) -> None:
    body = _ok(client.post("/api/v1/ask/voice", content=question, headers=admin.headers))
    assert body["citations"] == []
    assert body["mode"] == "nothing_found"
    assert body["answer"] == NOTHING_FOUND


def test_speak_returns_the_answer_as_a_wav(
    seeded: Services, client: TestClient, admin: AuthedUser, question: bytes
) -> None:
    body = _ok(
        client.post(
            "/api/v1/ask/voice", params={"speak": "true"}, content=question, headers=admin.headers
        )
    )
    audio = body["audio"]
    assert audio["media_type"] == "audio/wav" and audio["encoding"] == "base64"
    wav = base64.b64decode(audio["data"], validate=True)
    with wave.open(io.BytesIO(wav), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        seconds = reader.getnframes() / reader.getframerate()
    assert seconds == pytest.approx(audio["duration_s"], abs=0.01)
    # The answer reads out three matches: many seconds of sound, not silence.
    assert seconds > 5
    samples, _ = wav_samples(wav)
    assert float((samples**2).mean()) ** 0.5 > 0.01


@pytest.mark.parametrize("container", ["ogg", "webm"])
def test_browser_recordings_are_accepted(
    client: TestClient, admin: AuthedUser, question: bytes, container: str
) -> None:
    """What MediaRecorder uploads: Opus in OGG (Firefox) or WebM (Chrome), as multipart."""
    data = encode(question, container)
    body = _ok(
        client.post(
            "/api/v1/transcribe",
            files={"audio": (f"q.{container}", data, f"audio/{container}")},
            headers=admin.headers,
        )
    )
    assert body["format"] == container and body["codec"] == "opus"
    assert word_error_rate(SPOKEN, body["text"]) <= MAX_WER, body["text"]


BAD_AUDIO: dict[str, tuple[bytes, str]] = {
    "silence": (silence_wav(3.0), "the audio is silent"),
    "noise": (noise_wav(3.0), "no speech was found in the audio"),
    "garbage": (b"\x00\x17not audio at all" * 64, "unknown audio format"),
    "pdf": (b"%PDF-1.7\n" + b"x" * 500, "unknown audio format"),
    "broken-wav": (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 64, "could not be decoded"),
    "too-long": (noise_wav(31.0, level=0.05), "longer than the 30 s limit"),
    "too-short": (noise_wav(0.1), "shorter than the 0.3 s minimum"),
}


@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
@pytest.mark.parametrize("route", ["/api/v1/ask/voice", "/api/v1/transcribe"])
def test_audio_that_is_not_speech_is_a_422_with_the_reason(
    client: TestClient, admin: AuthedUser, route: str, case: str
) -> None:
    data, reason = BAD_AUDIO[case]
    resp = client.post(route, content=data, headers=admin.headers)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"] == ["body", "audio"]
    assert reason in detail[0]["msg"], detail


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {},  # no body at all
        {"files": {"note": ("a.txt", b"hello", "text/plain")}},  # no field named audio
        {"data": {"audio": "not a file"}, "files": {"x": ("x", b"x")}},
        {"content": b"--xyz\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}},
    ],
    ids=["empty", "no-audio-field", "audio-not-a-file", "broken-multipart"],
)
def test_missing_or_malformed_bodies_are_422(
    client: TestClient, admin: AuthedUser, request_kwargs: dict[str, Any]
) -> None:
    headers = {**admin.headers, **request_kwargs.pop("headers", {})}
    resp = client.post("/api/v1/ask/voice", headers=headers, **request_kwargs)
    assert resp.status_code == 422, resp.text
    assert isinstance(resp.json()["detail"], list)


def test_over_the_size_limit_is_413(
    services: Services, client: TestClient, admin: AuthedUser, question: bytes
) -> None:
    assert services.voice is not None
    services.voice.limits = AudioLimits(max_bytes=64 << 10)
    big = noise_wav(5.0)  # 160 KB
    for kwargs in ({"content": big}, {"files": {"audio": ("a.wav", big, "audio/wav")}}):
        resp = client.post("/api/v1/transcribe", headers=admin.headers, **kwargs)
        assert resp.status_code == 413, resp.text
    # The route's limit is the voice one, above the API's general 1 MiB body limit.
    services.voice.limits = AudioLimits(max_bytes=4 << 20)
    samples, rate = wav_samples(question)  # as a 48 kHz stereo recording with pauses around
    upsampled = np.interp(
        np.arange(len(samples) * 48000 // rate) * rate / 48000, np.arange(len(samples)), samples
    )
    pause = np.zeros(4 * 48000)
    mono = np.concatenate([pause, upsampled, pause]).astype(np.float32)
    recording = pcm_wav(np.repeat(mono, 2), 48000, channels=2)
    assert len(recording) > 1 << 20
    body = _ok(client.post("/api/v1/transcribe", content=recording, headers=admin.headers))
    assert word_error_rate(SPOKEN, body["text"]) <= MAX_WER, body["text"]
    assert body["speech_s"] < body["duration_s"] - 6  # the pauses are not speech


def test_guards_and_unavailable_parts(
    services: Services,
    client: TestClient,
    admin: AuthedUser,
    question: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for route in ("/api/v1/ask/voice", "/api/v1/transcribe"):
        assert client.post(route, content=question).status_code == 401

    def broken_speak(*_: Any, **__: Any) -> bytes:
        raise VoiceUnavailableError("espeak-ng is not installed")

    monkeypatch.setattr(voice_api, "speak", broken_speak)
    resp = client.post(
        "/api/v1/ask/voice", params={"speak": "true"}, content=question, headers=admin.headers
    )
    assert resp.status_code == 503 and "cannot be spoken" in resp.text

    async def down(_: Any) -> Transcript:
        raise VoiceUnavailableError("the transcriber is unavailable (RayActorError)")

    assert services.voice is not None
    services.voice.recognize = down
    resp = client.post("/api/v1/transcribe", content=question, headers=admin.headers)
    assert resp.status_code == 503 and "unavailable" in resp.text
    services.voice = None
    resp = client.post("/api/v1/transcribe", content=question, headers=admin.headers)
    assert resp.status_code == 404 and "voice.enabled" in resp.text


def test_the_answer_comes_from_one_replaceable_seam(
    services: Services, admin: AuthedUser, question: bytes
) -> None:
    """What the ask service plugs into: the transcript and the caller go to `get_answerer`'s
    callable, and its answer is returned as is."""
    asked: list[tuple[str, Principal]] = []

    async def answer(text: str, principal: Principal) -> AskAnswer:
        asked.append((text, principal))
        return AskAnswer(
            question=text, answer="Two people, both at the gate.", mode="llm", citations=[]
        )

    app = api_app(services)
    app.dependency_overrides[get_answerer] = lambda: answer
    with TestClient(app) as client:
        body = _ok(client.post("/api/v1/ask/voice", content=question, headers=admin.headers))
    assert body["answer"] == "Two people, both at the gate."
    assert [(t, p.subject) for t, p in asked] == [(body["transcript"]["text"], admin.id)]
