"""The local Ray head the CLI starts: its own session, and only it is stopped by the CLI.

The scenario runs in a child process: it connects and disconnects a driver, which must not
touch the test session's shared cluster (this process is connected to it).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCENARIO = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    import ray

    from sentinel import platform as runtime
    from sentinel.config import Settings
    from tests.utils.processes import session_alive

    tmp = Path(sys.argv[1])
    head = runtime.LocalHead.start(tmp / "ray-head.log")
    try:
        # A group signal to this process (the CLI) cannot reach the head: another session.
        assert os.getsid(head.process.pid) == head.process.pid != os.getsid(0)
        settings = Settings(data_dir=tmp / "data", namespace="sentinel-head-test")
        runtime.connect_ray(settings, head.address)
        assert ray.get(ray.put(42)) == 42
        # Joined through RAY_ADDRESS, the CLI is given no head: the cluster outlives its stop.
        runtime.shutdown(settings, None, None, timeout_s=10)
        assert not ray.is_initialized()
        assert head.process.poll() is None
        runtime.connect_ray(settings, head.address)
        assert ray.get(ray.put(42)) == 42
    finally:
        ray.shutdown()
        head.stop()
    assert head.process.returncode is not None
    assert not session_alive(head.process.pid)
    print("scenario passed")
    """
)


def test_the_cli_stops_only_the_head_it_started(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0 and "scenario passed" in done.stdout, done.stdout + done.stderr
