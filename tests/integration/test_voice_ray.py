"""Voice on the real platform: the ingress decodes the upload and the Transcriber deployment
(Whisper base, loaded once in its replica) transcribes it; a spoken question is answered."""

from __future__ import annotations

from tests.integration.conftest import Stack
from tests.utils.speech import espeak_wav, noise_wav

SPOKEN = "was there a red car at the gate this morning"


def test_a_spoken_question_goes_through_the_transcriber_deployment(sentinel_stack: Stack) -> None:
    from sentinel.search.voice import word_error_rate

    http = sentinel_stack.http
    resp = http.post(
        "/api/v1/ask/voice",
        params={"speak": "true"},
        files={"audio": ("q.wav", espeak_wav(SPOKEN), "audio/wav")},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert word_error_rate(SPOKEN, body["transcript"]["text"]) <= 0.25, body["transcript"]
    assert body["answer"]  # from the search over whatever the stack's cameras indexed
    assert body["audio"]["media_type"] == "audio/wav" and body["audio"]["duration_s"] > 0.5

    noise = http.post("/api/v1/transcribe", content=noise_wav(2.0), timeout=120)
    assert noise.status_code == 422, noise.text
    assert "no speech" in noise.json()["detail"][0]["msg"]
