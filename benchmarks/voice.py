"""Speech to text: real-time factor on 2 cores and word error rate on spoken questions.

``python -m benchmarks voice``: twelve questions about the cameras' history, spoken by
espeak-ng (through :func:`sentinel.search.voice.speak`, the product's own TTS), are transcribed

- **bare**: faster-whisper's ``WhisperModel`` called directly in this process on the decoded
  16 kHz samples (int8, 2 threads, greedy, Silero VAD, English): the baseline;
- **served**: the API's path without HTTP: the WAV bytes decoded and checked by
  :func:`sentinel.search.voice.transcribe_upload`, then transcribed by the Transcriber
  deployment (Ray Serve, the same settings) through its handle.

Both sides alternate per question (the order flips each question) so that a load swing hits
both. Printed: audio seconds, real-time factor (processing seconds / audio seconds; below 1 is
faster than real time) of each side, the served/bare time ratio, and each side's mean word
error rate (case, punctuation and number words ignored). The machine's load average is printed
with them: on a shared 2-core machine the figures move with it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

QUESTIONS = [
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
THREADS = 2
WORDS_PER_MINUTE = 150
RTF_TARGET = 1.0  # faster than real time on 2 cores
SERVED_TARGET = 1.2  # the served path within 1.2x of the bare model's time


def _bare_model(folder: Path) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(folder), device="cpu", compute_type="int8", cpu_threads=THREADS, local_files_only=True
    )


def _bare(model: Any, samples: NDArray[np.float32]) -> tuple[str, float]:
    start = time.perf_counter()
    segments, _ = model.transcribe(
        samples,
        language="en",
        beam_size=1,
        vad_filter=True,
        condition_on_previous_text=False,
        without_timestamps=True,
        temperature=0.0,
    )
    text = " ".join(s.text.strip() for s in segments).strip()
    return text, time.perf_counter() - start


def run(_model: Path) -> None:
    """Real-time factor and WER of the served path vs faster-whisper in-process."""
    import ray
    from ray import serve

    from benchmarks.common import init_ray, verdict
    from sentinel.models.whisper import Transcript, assemble_whisper
    from sentinel.search.voice import (
        AudioLimits,
        decode_audio,
        speak,
        transcribe_upload,
        word_error_rate,
    )
    from sentinel.serve.transcriber import build_transcriber

    wavs = [speak(q, words_per_minute=WORDS_PER_MINUTE) for q in QUESTIONS]
    decoded = [decode_audio(w).samples for w in wavs]
    audio_s = sum(len(s) for s in decoded) / 16000
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-whisper-") as tmp:
        folder = assemble_whisper(Path(tmp) / "whisper-base")
        bare_model = _bare_model(folder)
        init_ray(f"sentinel-bench-{uuid.uuid4().hex[:8]}")
        try:
            serve.start(proxy_location="Disabled")
            options = {"pinned": True, "threads": THREADS, "language": "en", "beam_size": 1}
            handle = serve.run(
                build_transcriber(folder, options, num_cpus=0),
                name="voice-bench",
                route_prefix=None,
            )

            async def recognize(samples: NDArray[np.float32]) -> Transcript:
                return Transcript.from_dict(await handle.transcribe.remote(samples))

            async def served(data: bytes) -> tuple[str, float]:
                start = time.perf_counter()
                _, transcript = await transcribe_upload(data, AudioLimits(), recognize)
                return transcript.text, time.perf_counter() - start

            async def compare() -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
                await served(wavs[0])  # warm-up, both sides
                _bare(bare_model, decoded[0])
                bare, serv = [], []
                for i, (wav, samples) in enumerate(zip(wavs, decoded, strict=True)):
                    if i % 2 == 0:
                        bare.append(_bare(bare_model, samples))
                        serv.append(await served(wav))
                    else:
                        serv.append(await served(wav))
                        bare.append(_bare(bare_model, samples))
                return bare, serv

            bare, serv = asyncio.run(compare())
        finally:
            ray.shutdown()
    bare_s = sum(t for _, t in bare)
    served_s = sum(t for _, t in serv)
    wer_bare = float(
        np.mean([word_error_rate(q, t) for q, (t, _) in zip(QUESTIONS, bare, strict=True)])
    )
    wer_served = float(
        np.mean([word_error_rate(q, t) for q, (t, _) in zip(QUESTIONS, serv, strict=True)])
    )
    rtf_bare, rtf_served = bare_s / audio_s, served_s / audio_s
    ratio = served_s / bare_s
    print(
        f"voice: {len(QUESTIONS)} espeak-ng questions, {audio_s:.1f} s of audio, Whisper base "
        f"int8, {THREADS} threads, greedy;\n"
        f"  bare faster-whisper in-process: {bare_s:.2f} s, real-time factor {rtf_bare:.2f}, "
        f"WER {wer_bare:.3f}\n"
        f"  served (decode + checks + Transcriber deployment): {served_s:.2f} s, real-time factor "
        f"{rtf_served:.2f} (target < {RTF_TARGET}: {verdict(rtf_served < RTF_TARGET)}), WER "
        f"{wer_served:.3f}\n"
        f"  served/bare time ratio {ratio:.2f} (target <= {SERVED_TARGET}: "
        f"{verdict(ratio <= SERVED_TARGET)}); load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    misheard = [
        (q, t) for q, (t, _) in zip(QUESTIONS, serv, strict=True) if word_error_rate(q, t) > 0
    ]
    for said, heard in misheard:
        print(f"  said {said!r}, heard {heard!r}", flush=True)
