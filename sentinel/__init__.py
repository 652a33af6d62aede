"""Sentinel: AI video surveillance on Ray."""

import os

__version__ = "0.1.0"

# MLflow (training runs, the model registry) reports usage to mlflow-telemetry.io unless told
# not to: Sentinel sends nothing anywhere it was not configured to. Set before any import of
# mlflow (every Sentinel module imports this package first); an explicit setting is kept.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
