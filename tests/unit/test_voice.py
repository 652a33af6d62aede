"""Voice without a model or Ray: decoding uploads (real WAV, OGG/Opus and WebM/Opus files),
their limits and refusals, silence, speaking with espeak-ng, and the word error rate."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from sentinel.config import VoiceSettings
from sentinel.models.whisper import SAMPLE_RATE, Transcript
from sentinel.search.voice import (
    SPEAK_MAX_CHARS,
    AudioLimits,
    VoiceInputError,
    VoiceUnavailableError,
    check_audible,
    check_speech,
    decode_audio,
    limits_of,
    sniff_format,
    speak,
    word_error_rate,
)
from tests.utils.speech import encode, espeak_wav, noise_wav, pcm_wav, silence_wav, wav_samples

SPOKEN = "show me the person walking left near the car park"


@pytest.fixture(scope="module")
def speech_wav() -> bytes:
    return espeak_wav(SPOKEN)


def _transcript(text: str) -> Transcript:
    return Transcript(text, "en", 3.0, 0.0 if not text else 2.5, 0.9, None, 0.1)


@pytest.mark.parametrize("container", ["wav", "ogg", "webm"])
def test_decodes_each_container_to_16k_mono_of_the_same_length(
    speech_wav: bytes, container: str
) -> None:
    data = speech_wav if container == "wav" else encode(speech_wav, container)
    audio = decode_audio(data)
    source, rate = wav_samples(speech_wav)
    assert audio.format == container
    assert audio.codec == ("pcm_s16le" if container == "wav" else "opus")
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration_s == pytest.approx(len(source) / rate, abs=0.1)
    assert float(audio.samples.min()) >= -1.0 and float(audio.samples.max()) <= 1.0
    assert audio.rms_dbfs > -40  # speech, well above silence


def test_stereo_44k_is_mixed_down_and_resampled() -> None:
    rate = 44100
    t = np.arange(rate) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left], axis=1).reshape(-1).astype(np.float32)
    audio = decode_audio(pcm_wav(stereo, rate, channels=2))
    assert audio.duration_s == pytest.approx(1.0, abs=0.01)
    assert len(audio.samples) == pytest.approx(SAMPLE_RATE, abs=50)
    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(audio.samples)
    assert peak_hz == pytest.approx(440, abs=3)  # the same tone, at the new rate
    assert -10 < audio.rms_dbfs < -5  # both channels mixed in (ffmpeg's stereo downmix)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the audio is empty"),
        (b"\x00\x01garbage bytes that are no audio at all" * 10, "unknown audio format"),
        (b"ID3\x04\x00" + b"\x00" * 200, "unknown audio format"),  # an MP3: not accepted
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 64, "could not be decoded"),
        (b"OggS" + b"\x00" * 100, "OGG"),
        (b"\x1a\x45\xdf\xa3" + b"\x01" * 100, "WEBM"),
    ],
    ids=["empty", "garbage", "mp3", "broken-wav", "broken-ogg", "broken-webm"],
)
def test_refuses_what_is_not_known_audio_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(VoiceInputError, match=reason):
        decode_audio(data)


def test_refuses_a_container_without_audio() -> None:
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="webm") as dst:
        stream = dst.add_stream("libvpx", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(
                np.full((64, 64, 3), i * 40, dtype=np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    with pytest.raises(VoiceInputError, match="no audio stream"):
        decode_audio(out.getvalue())


def test_limits_on_bytes_and_duration(speech_wav: bytes) -> None:
    with pytest.raises(VoiceInputError, match="over the 1024 limit"):
        decode_audio(speech_wav, AudioLimits(max_bytes=1024))
    with pytest.raises(VoiceInputError, match="longer than the 2 s limit"):
        decode_audio(speech_wav, AudioLimits(max_seconds=2.0))
    with pytest.raises(VoiceInputError, match=r"shorter than the 0\.3 s minimum"):
        decode_audio(pcm_wav(np.full(1600, 0.2, dtype=np.float32), 16000))
    # Decoding stops at the limit: a long file costs no more than the limit.
    with pytest.raises(VoiceInputError, match="longer than the 30 s limit"):
        decode_audio(noise_wav(31.0))


def test_limits_come_from_the_settings_and_are_checked() -> None:
    assert limits_of(VoiceSettings(max_seconds=12, max_bytes=4096)) == AudioLimits(4096, 0.3, 12)
    with pytest.raises(ValueError, match="min_seconds"):
        VoiceSettings(min_seconds=5, max_seconds=4)
    with pytest.raises(ValueError):
        AudioLimits(max_bytes=0)


def test_silence_is_refused_before_any_model_and_speech_passes(speech_wav: bytes) -> None:
    silent = decode_audio(silence_wav(2.0))
    with pytest.raises(VoiceInputError, match="silent"):
        check_audible(silent)
    hum = decode_audio(pcm_wav(np.full(32000, 0.0005, dtype=np.float32), 16000))
    with pytest.raises(VoiceInputError, match="silent"):
        check_audible(hum)
    check_audible(decode_audio(speech_wav))


def test_a_recognition_without_words_is_no_speech() -> None:
    for text in ("", "  ", "…", " . "):
        with pytest.raises(VoiceInputError, match="no speech was found"):
            check_speech(_transcript(text))
    check_speech(_transcript("Hello."))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"RIFF\x00\x00\x00\x00WAVE", "wav"),
        (b"RIFF\x00\x00\x00\x00AVI ", None),
        (b"OggS\x00", "ogg"),
        (b"\x1a\x45\xdf\xa3\x00", "webm"),
        (b"fLaC", None),
        (b"", None),
    ],
)
def test_sniffs_the_container_by_its_first_bytes(data: bytes, expected: str | None) -> None:
    assert sniff_format(data) == expected


def _read_wav(data: bytes) -> tuple[int, int, int, int]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()


def test_speak_returns_a_valid_wav_with_true_sizes() -> None:
    data = speak("Two people were seen at the gate.")
    channels, width, rate, frames = _read_wav(data)
    assert (channels, width, rate) == (1, 2, 22050)
    assert 1.0 < frames / rate < 5.0
    assert int.from_bytes(data[4:8], "little") == len(data) - 8  # the RIFF size is true
    samples, _ = wav_samples(data)
    assert float(np.sqrt(np.mean(samples**2))) > 0.01  # not silence


def test_speak_passes_the_text_as_text_never_as_options_or_a_shell() -> None:
    """Option-like and shell-like text is spoken (stdin), not obeyed: espeak-ng would print its
    help and write no WAV for `--help`, and a shell would run the command."""
    data = speak("--help; touch /tmp/voice-pwned $(reboot) -w /tmp/x.wav")
    channels, _, rate, frames = _read_wav(data)
    assert channels == 1 and frames / rate > 2.0
    import os

    assert not os.path.exists("/tmp/voice-pwned")


def test_speak_cuts_long_text_and_drops_control_characters() -> None:
    short = _read_wav(speak("word " * 30))[3]
    capped = _read_wav(speak("word\x00\x07 " * (SPEAK_MAX_CHARS)))[3]
    assert capped > short  # spoken, up to the cap (with "and more")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"voice": "en-us; rm -rf /"}, ValueError),
        ({"voice": "--stdout"}, ValueError),
        ({"words_per_minute": 5}, ValueError),
        ({"binary": "espeak-ng-not-installed"}, VoiceUnavailableError),
        ({"binary": "false"}, VoiceUnavailableError),
    ],
)
def test_speak_refusals(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        speak("hello", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nothing to say"):
        speak(" \x00 ")


def test_speak_times_out() -> None:
    with pytest.raises(VoiceUnavailableError, match="longer than"):
        speak("a long text to say " * 100, timeout_s=0.001)


@pytest.mark.parametrize(
    ("ref", "hyp", "wer"),
    [
        ("show me the car park", "Show me the car park.", 0.0),
        ("in the last ten minutes", "in the last 10 minutes", 0.0),
        ("show me the car park", "show me the carpark", 0.4),  # 1 sub + 1 del over 5
        ("a b c d", "a x c d e", 0.5),  # 1 sub + 1 ins over 4
        ("a b c d", "", 1.0),
        ("", "", 0.0),
        ("", "noise", 1.0),
    ],
)
def test_word_error_rate(ref: str, hyp: str, wer: float) -> None:
    assert word_error_rate(ref, hyp) == pytest.approx(wer)
