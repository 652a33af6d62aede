"""Voice: spoken questions in, spoken answers out. No Ray, no web framework here.

- :func:`decode_audio` turns an upload (WAV, OGG or WebM, recognised by its first bytes, never
  by what the client claims) into 16 kHz mono float32 with PyAV, within byte and duration
  limits; anything else is a :class:`VoiceInputError` whose message says why.
- :func:`check_audible` refuses silence before any model runs; :func:`check_speech` refuses
  what the recogniser kept no words of (noise, music, breathing: Silero VAD and Whisper's own
  no-speech probability decide).
- :func:`transcribe_upload` chains them around a recogniser (the Serve deployment's handle or
  an in-process :class:`sentinel.models.whisper.SpeechRecognizer`).
- :func:`speak` renders text as a WAV with the ``espeak-ng`` binary: no shell, the text on
  stdin (it can never become an option), a timeout, and the WAV rewritten with true sizes.
- :func:`word_error_rate` scores a transcript against what was said (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import shutil
import subprocess
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from sentinel.config import VoiceSettings
from sentinel.models.whisper import SAMPLE_RATE, SpeechRecognizer, Transcript

__all__ = [
    "FORMATS",
    "Audio",
    "AudioLimits",
    "VoiceInputError",
    "VoiceUnavailableError",
    "check_audible",
    "check_speech",
    "decode_audio",
    "limits_of",
    "on_a_thread",
    "recognizer_options",
    "sniff_format",
    "speak",
    "transcribe_upload",
    "word_error_rate",
]

FORMATS: dict[str, str] = {"wav": "wav", "ogg": "ogg", "webm": "matroska"}
"""Accepted containers and the demuxer each one is opened with (no probing of others)."""

_CODECS: dict[str, frozenset[str]] = {
    "wav": frozenset(),  # any pcm_* codec, checked by prefix
    "ogg": frozenset({"opus", "vorbis", "flac", "speex"}),
    "webm": frozenset({"opus", "vorbis"}),
}
SILENCE_DBFS = -55.0
"""Audio whose RMS level is below this (dB relative to full scale) is silence."""
MAX_CHANNELS = 8
SPEAK_MAX_CHARS = 2000


class VoiceInputError(ValueError):
    """An upload that is not usable speech; the message is the reason, for the caller."""


class VoiceUnavailableError(RuntimeError):
    """A voice part cannot run now: the recogniser is down, or espeak-ng is missing, failing
    or too slow. Not the caller's fault (a 503, not a 422)."""


@dataclass(frozen=True)
class AudioLimits:
    """What an upload may be.

    Attributes:
        max_bytes: Largest upload, in bytes.
        min_seconds: Shortest audio.
        max_seconds: Longest audio (decoding stops past it).
    """

    max_bytes: int = 10 << 20
    min_seconds: float = 0.3
    max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or not 0 <= self.min_seconds < self.max_seconds:
            raise ValueError(
                "limits need max_bytes > 0 and 0 <= min_seconds < max_seconds, but got "
                f"{self.max_bytes}, {self.min_seconds}, {self.max_seconds}"
            )


@dataclass(frozen=True)
class Audio:
    """Decoded audio.

    Attributes:
        samples: 16 kHz mono float32 in [-1, 1].
        format: "wav", "ogg" or "webm".
        codec: The stream's codec as ffmpeg names it ("pcm_s16le", "opus", …).
        duration_s: Seconds of audio.
        rms_dbfs: The RMS level in dB relative to full scale (-inf: digital silence).
    """

    samples: NDArray[np.float32]
    format: str
    codec: str
    duration_s: float
    rms_dbfs: float


def sniff_format(data: bytes) -> str | None:
    """The container by its magic bytes: "wav", "ogg", "webm" (Matroska/EBML), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def _codec_allowed(fmt: str, codec: str) -> bool:
    if fmt == "wav":
        return codec.startswith("pcm_")
    return codec in _CODECS[fmt]


def _rms_dbfs(samples: NDArray[np.float32]) -> float:
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def decode_audio(data: bytes, limits: AudioLimits | None = None) -> Audio:
    """Decode an upload to 16 kHz mono float32.

    Args:
        data: The uploaded bytes.
        limits: Size and duration limits (default :class:`AudioLimits`).

    Returns:
        The decoded :class:`Audio`.

    Raises:
        VoiceInputError: empty, too large, not WAV/OGG/WebM, no audio stream, a codec that
            does not belong in the container, undecodable, shorter than ``min_seconds`` or
            longer than ``max_seconds``.
    """
    limits = limits or AudioLimits()
    if not data:
        raise VoiceInputError("the audio is empty")
    if len(data) > limits.max_bytes:
        raise VoiceInputError(f"the audio is {len(data)} bytes, over the {limits.max_bytes} limit")
    fmt = sniff_format(data)
    if fmt is None:
        raise VoiceInputError(
            "unknown audio format: expected WAV (RIFF/WAVE), OGG or WebM, but the data starts "
            f"with {data[:8].hex()}"
        )
    max_samples = int(limits.max_seconds * SAMPLE_RATE)
    chunks: list[NDArray[np.float32]] = []
    total = 0
    codec = ""
    try:
        with av.open(io.BytesIO(data), mode="r", format=FORMATS[fmt]) as container:
            streams = container.streams.audio
            if not streams:
                raise VoiceInputError(f"the {fmt.upper()} data holds no audio stream")
            stream = streams[0]
            codec = str(stream.codec_context.name)
            if not _codec_allowed(fmt, codec):
                raise VoiceInputError(f"{codec} audio is not accepted in {fmt.upper()}")
            if (stream.codec_context.channels or 0) > MAX_CHANNELS:
                raise VoiceInputError(f"at most {MAX_CHANNELS} audio channels are accepted")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append(chunk)
                    total += chunk.size
                if total > max_samples:
                    raise VoiceInputError(
                        f"the audio is longer than the {limits.max_seconds:g} s limit"
                    )
            for out in resampler.resample(None):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append(chunk)
                total += chunk.size
    except VoiceInputError:
        raise
    except (av.error.FFmpegError, ValueError, EOFError, OverflowError) as exc:
        raise VoiceInputError(f"the {fmt.upper()} audio could not be decoded: {exc}") from exc
    if total > max_samples:
        raise VoiceInputError(f"the audio is longer than the {limits.max_seconds:g} s limit")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    samples = np.nan_to_num(np.clip(samples, -1.0, 1.0), nan=0.0).astype(np.float32, copy=False)
    duration = samples.size / SAMPLE_RATE
    if duration < limits.min_seconds:
        raise VoiceInputError(
            f"the audio lasts {duration:.2f} s, shorter than the {limits.min_seconds:g} s minimum"
        )
    return Audio(samples, fmt, codec, round(duration, 3), _rms_dbfs(samples))


def check_audible(audio: Audio, threshold_dbfs: float = SILENCE_DBFS) -> None:
    """Refuse silence before any model runs.

    Raises:
        VoiceInputError: the RMS level is below ``threshold_dbfs``.
    """
    if audio.rms_dbfs < threshold_dbfs:
        level = "-inf" if math.isinf(audio.rms_dbfs) else f"{audio.rms_dbfs:.0f}"
        raise VoiceInputError(
            f"the audio is silent (level {level} dBFS, below {threshold_dbfs:g} dBFS)"
        )


def check_speech(transcript: Transcript) -> None:
    """Refuse a recognition that kept no words.

    The recogniser drops what Silero VAD finds no voice in and the segments Whisper itself
    rates as no speech (no-speech probability over 0.6 with a low log-probability), so noise,
    music and hum end here with an empty text.

    Raises:
        VoiceInputError: no words were recognised.
    """
    if not re.search(r"\w", transcript.text):
        raise VoiceInputError(
            "no speech was found in the audio "
            f"({transcript.speech_s:.1f} s of {transcript.duration_s:.1f} s sounded like a voice)"
        )


Recognize = Callable[[NDArray[np.float32]], Awaitable[Transcript]]
"""Transcribes 16 kHz mono float32 samples (a deployment handle or a runner on a thread)."""


def on_a_thread(model: SpeechRecognizer) -> Recognize:
    """An in-process recogniser as a :data:`Recognize` (the model runs on a worker thread)."""

    async def recognize(samples: NDArray[np.float32]) -> Transcript:
        return await asyncio.to_thread(model.transcribe, samples)

    return recognize


async def transcribe_upload(
    data: bytes, limits: AudioLimits, recognize: Recognize
) -> tuple[Audio, Transcript]:
    """Decode, check and transcribe an upload.

    Raises:
        VoiceInputError: the upload is not usable speech (see :func:`decode_audio`,
            :func:`check_audible`, :func:`check_speech`).
    """
    audio = await asyncio.to_thread(decode_audio, data, limits)
    check_audible(audio)
    transcript = await recognize(audio.samples)
    check_speech(transcript)
    return audio, transcript


_VOICE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8}){0,3}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean_for_speech(text: str) -> str:
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > SPEAK_MAX_CHARS:
        cut = text[:SPEAK_MAX_CHARS].rsplit(" ", 1)[0]
        text = cut + " … and more."
    return text


def _rewrap_wav(raw: bytes) -> bytes:
    """espeak-ng streams its WAV with placeholder sizes: rewrite it with the true ones."""
    if len(raw) < 44 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise VoiceUnavailableError("espeak-ng did not write a WAV")
    pos = 12
    fmt: tuple[int, int, int] | None = None
    while pos + 8 <= len(raw):
        chunk_id, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk_id == b"fmt ":
            channels = int.from_bytes(raw[body + 2 : body + 4], "little")
            rate = int.from_bytes(raw[body + 4 : body + 8], "little")
            bits = int.from_bytes(raw[body + 14 : body + 16], "little")
            fmt = (channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                break
            pcm = raw[body:]  # to the end: the declared size is a placeholder
            channels, rate, bits = fmt
            frame = channels * bits // 8
            pcm = pcm[: len(pcm) - len(pcm) % frame] if frame else b""
            out = io.BytesIO()
            with wave.open(out, "wb") as wav:
                wav.setnchannels(channels)
                wav.setsampwidth(bits // 8)
                wav.setframerate(rate)
                wav.writeframes(pcm)
            return out.getvalue()
        pos = body + size + (size & 1)
    raise VoiceUnavailableError("espeak-ng wrote a WAV without a data chunk")


def speak(
    text: str,
    *,
    voice: str = "en-us",
    words_per_minute: int = 165,
    timeout_s: float = 10.0,
    binary: str = "espeak-ng",
) -> bytes:
    """Render ``text`` as a mono 16-bit WAV with espeak-ng.

    The binary is run directly (no shell) with the text on its stdin as UTF-8, so nothing in the
    text can become an option or a command; control characters are dropped and the text is cut
    at :data:`SPEAK_MAX_CHARS`.

    Raises:
        ValueError: ``voice`` is not a voice name like "en-us", or the text is empty.
        VoiceUnavailableError: espeak-ng is not installed, fails, or outlasts ``timeout_s``.
    """
    if not _VOICE.match(voice):
        raise ValueError(f"voice must look like 'en-us', but got {voice!r}")
    if not 80 <= words_per_minute <= 450:
        raise ValueError(f"words_per_minute must be 80 to 450, but got {words_per_minute}")
    cleaned = _clean_for_speech(text)
    if not cleaned:
        raise ValueError("nothing to say: the text is empty")
    exe = shutil.which(binary)
    if exe is None:
        raise VoiceUnavailableError(f"{binary} is not installed (Debian package espeak-ng)")
    try:
        done = subprocess.run(  # noqa: S603  # fixed argv, no shell, text on stdin
            [exe, "-v", voice, "-s", str(words_per_minute), "-b", "1", "--stdin", "--stdout"],
            input=cleaned.encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise VoiceUnavailableError(f"{binary} took longer than {timeout_s:g} s") from exc
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip()[:200]
        raise VoiceUnavailableError(f"{binary} failed ({done.returncode}): {err}")
    return _rewrap_wav(done.stdout)


_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_NUMBERS = {word: str(n) for n, word in enumerate(_NUMBER_WORDS.split())}


def _words(text: str) -> list[str]:
    words = re.sub(r"[^\w\s']", " ", text.lower()).replace("'", "").split()
    return [_NUMBERS.get(w, w) for w in words]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / words in ``reference``.

    Case, punctuation and apostrophes are ignored and number words up to twenty count as
    their digits ("ten" = "10"). An empty reference gives 0.0 for an empty hypothesis, else 1.0.
    """
    ref, hyp = _words(reference), _words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / len(ref)


def limits_of(settings: VoiceSettings) -> AudioLimits:
    """The upload limits of the voice settings."""
    return AudioLimits(settings.max_bytes, settings.min_seconds, settings.max_seconds)


def recognizer_options(settings: VoiceSettings, *, pinned: bool) -> dict[str, Any]:
    """Keyword arguments of :class:`sentinel.models.whisper.SpeechRecognizer` from the voice
    settings (``pinned``: the folder must be the bundled Whisper base)."""
    return {
        "pinned": pinned,
        "threads": settings.threads,
        "compute_type": settings.compute_type,
        "language": settings.language,
        "beam_size": settings.beam_size,
    }
