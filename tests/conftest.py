"""Shared test setup: offline, no Ray auth for the local cluster, database fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest_plugins = ["tests.utils.db", "tests.utils.model", "tests.utils.s3"]
