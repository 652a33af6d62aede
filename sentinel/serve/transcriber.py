"""The speech-to-text deployment: 16 kHz mono samples from the ingress (which decodes and
checks the upload), Whisper base on faster-whisper, loaded once per replica. No batching: a
question is a few seconds of audio and arrives alone; CTranslate2 uses the replica's threads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from ray import serve

from sentinel.models.whisper import SpeechRecognizer


@serve.deployment(name="Transcriber", max_ongoing_requests=16)
class Transcriber:
    """Serves :class:`sentinel.models.whisper.SpeechRecognizer`."""

    def __init__(self, model_dir: str, options: dict[str, Any]) -> None:
        self.model = SpeechRecognizer(Path(model_dir), **options)

    async def transcribe(self, samples: NDArray[np.float32]) -> dict[str, Any]:
        """The :class:`~sentinel.models.whisper.Transcript` as a dict; ValueError for samples
        that are not 1-d float32."""
        transcript = await asyncio.to_thread(self.model.transcribe, samples)
        return transcript.to_dict()

    def ready(self) -> bool:
        return True


def build_transcriber(model_dir: Path, options: dict[str, Any], num_cpus: float = 0.0) -> Any:
    """The bound transcriber deployment.

    Args:
        model_dir: The verified Whisper folder.
        options: Keyword arguments of :class:`SpeechRecognizer` (threads, language, …).
        num_cpus: CPUs reserved for the replica (0: it shares the cores).
    """
    return Transcriber.options(  # type: ignore[attr-defined]
        ray_actor_options={"num_cpus": num_cpus}
    ).bind(str(model_dir), options)
