"""Sentinel sends nothing anywhere it was not configured to: MLflow's usage telemetry is off."""

from __future__ import annotations

import os
import subprocess
import sys

# MLflow also stays quiet under CI or pytest: the check runs in a child without those variables.
_CI_VARS = {
    "PYTEST_CURRENT_TEST",
    "CI",
    "GITHUB_ACTIONS",
    "MLFLOW_DISABLE_TELEMETRY",
    "DO_NOT_TRACK",
}


def _child(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _CI_VARS}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_mlflow_telemetry_is_off_once_sentinel_is_imported() -> None:
    code = (
        "import sentinel.train.registry\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(is_telemetry_disabled())"
    )
    assert _child(code) == "True"


def test_an_explicit_setting_is_kept() -> None:
    code = "import os; os.environ['MLFLOW_DISABLE_TELEMETRY'] = 'false'; import sentinel; " + (
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    )
    assert _child(code) == "false"
