"""The shared stack's Ray workers run at the nice value `sentinel up` gives its head's."""

from __future__ import annotations

import os

import ray

from tests.integration.conftest import Stack


@ray.remote(num_cpus=0)
def _niceness() -> int:
    return os.nice(0)


def test_workers_run_at_the_configured_niceness(sentinel_stack: Stack) -> None:
    want = sentinel_stack.settings.cluster.worker_niceness
    assert want == 0  # not Ray's 15: cameras and the detector are not background work
    assert ray.get(_niceness.remote(), timeout=60) == want
