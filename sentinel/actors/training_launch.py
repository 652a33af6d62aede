"""Starting training runs as Ray tasks, for the API (light: torch and Ray Train load in the task).

The task is the Ray Train driver of one run (``sentinel.actors.training.run_training``); it
needs no CPU of its own (the trainer's workers reserve theirs).
"""

from __future__ import annotations

from typing import Any

import ray

from sentinel.config import Settings


@ray.remote(num_cpus=0)
def training_task(settings: Settings, run_id: str) -> dict[str, Any]:
    """Run training run ``run_id`` to its end; ``settings`` travel pickled (secrets intact)."""
    from sentinel.actors.training import run_training  # torch, Ray Train: only in the task

    return run_training(settings, run_id)


class TrainingLauncher:
    """Starts recorded runs as Ray tasks (the API's ``TrainingControl`` in the platform)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._running: dict[str, ray.ObjectRef[Any]] = {}

    async def start(self, run_id: str) -> None:
        # Keep the refs of running jobs (a dropped ref must not let anyone forget a job).
        self._running = {k: v for k, v in self._running.items() if not _done(v)}
        self._running[run_id] = training_task.remote(self._settings, run_id)


def _done(ref: ray.ObjectRef[Any]) -> bool:
    ready, _ = ray.wait([ref], timeout=0)
    return bool(ready)
