"""Real audio for the voice tests: speech from espeak-ng, re-encoded with PyAV, and non-speech.

espeak-ng must be installed (the Makefile's system-deps step does it); a test that needs speech
and cannot make it fails with how to fix it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream
from numpy.typing import NDArray

QUERIES = [
    "show me the person walking left near the car park",
    "was there a red car at the gate this morning",
    "how many people did the demo camera see in the last ten minutes",
    "find a person in a blue jacket near the loading dock",
    "which camera saw a truck yesterday evening",
    "list every vehicle parked in the car park today",
    "did anyone enter the building after midnight",
    "show the people standing near the front door",
    "was a bicycle seen on the street this afternoon",
    "find a man carrying a bag across the plaza",
    "how long did the van stay at the entrance",
    "when did the last person leave the office",
]
"""Spoken questions for the transcription tests and the benchmark (the WER set)."""


def espeak_wav(text: str, *, voice: str = "en-us", words_per_minute: int = 150) -> bytes:
    """``text`` spoken by espeak-ng, as a WAV file (22.05 kHz mono 16-bit, true sizes)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AssertionError("espeak-ng is not installed: `apt-get install espeak-ng`")
    done = subprocess.run(
        [exe, "-v", voice, "-s", str(words_per_minute), "-b", "1", "--stdin", "--stdout"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    raw = done.stdout
    data = raw.index(b"data") + 8
    return pcm_wav(_floats(raw[data:]), 22050)


def _floats(pcm: bytes) -> NDArray[np.float32]:
    return (np.frombuffer(pcm, dtype="<i2") / 32768).astype(np.float32)


def pcm_wav(samples: NDArray[np.float32], rate: int, channels: int = 1) -> bytes:
    """Float samples in [-1, 1] (interleaved when ``channels`` > 1) as a 16-bit PCM WAV."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def wav_samples(data: bytes) -> tuple[NDArray[np.float32], int]:
    """A 16-bit mono WAV's samples in [-1, 1] and its rate."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        rate = wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    return _floats(pcm), rate


def encode(wav: bytes, container: str, codec: str = "libopus", rate: int = 48000) -> bytes:
    """Re-encode a mono WAV into ``container`` ("ogg" or "webm") with ``codec``, as browsers'
    MediaRecorder does (Opus at 48 kHz)."""
    samples, src_rate = wav_samples(wav)
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as dst:
        stream = cast(AudioStream, dst.add_stream(codec, rate=rate, layout="mono"))
        frame = av.AudioFrame.from_ndarray(
            (samples * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = src_rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for piece in resampler.resample(frame):
            for packet in stream.encode(piece):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()


def noise_wav(seconds: float, *, level: float = 0.3, rate: int = 16000, seed: int = 7) -> bytes:
    """White noise (no speech in it) at ``level`` RMS."""
    rng = np.random.default_rng(seed)
    return pcm_wav((rng.standard_normal(int(seconds * rate)) * level).astype(np.float32), rate)


def silence_wav(seconds: float, *, rate: int = 16000) -> bytes:
    return pcm_wav(np.zeros(int(seconds * rate), dtype=np.float32), rate)
