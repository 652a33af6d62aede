"""The environment `sentinel up` gives the head it starts: Serve's proxy, workers' niceness."""

from __future__ import annotations

from pathlib import Path

from sentinel.config import Settings
from sentinel.platform import head_env, serve_env

SERVE_HASH_DIR = 56  # Serve puts HAProxy's files one directory of this length deeper
HAPROXY_SOCKET_MAX = 97


def test_haproxy_is_the_default_with_files_of_the_data_dirs_own(tmp_path: Path) -> None:
    env = serve_env(Settings(data_dir=tmp_path / "a" / ("x" * 150)))
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert float(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) <= 5
    for key in ("RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH"):
        path = Path(env[key])
        assert len(str(path.parent / ("h" * SERVE_HASH_DIR) / path.name)) <= HAPROXY_SOCKET_MAX
    other = serve_env(Settings(data_dir=tmp_path / "b"))
    assert other["RAY_SERVE_HAPROXY_SOCKET_PATH"] != env["RAY_SERVE_HAPROXY_SOCKET_PATH"]
    assert serve_env(Settings(data_dir=tmp_path / "a" / ("x" * 150))) == env


def test_the_ray_proxy_sets_nothing(tmp_path: Path) -> None:
    assert serve_env(Settings(data_dir=tmp_path, cluster={"serve_proxy": "ray"})) == {}


def test_haproxy_ports_come_from_the_settings(tmp_path: Path) -> None:
    """Ports are per machine: a second Sentinel (or test stack) names its own."""
    default = serve_env(Settings(data_dir=tmp_path))
    assert default["RAY_SERVE_HAPROXY_STATS_PORT"] == "8404"
    assert default["RAY_SERVE_HAPROXY_METRICS_PORT"] == "9101"
    cluster = {"haproxy_stats_port": 18404, "haproxy_metrics_port": 19101}
    other = serve_env(Settings(data_dir=tmp_path, cluster=cluster))
    assert other["RAY_SERVE_HAPROXY_STATS_PORT"] == "18404"
    assert other["RAY_SERVE_HAPROXY_METRICS_PORT"] == "19101"


def test_the_head_runs_its_workers_at_the_configured_niceness(tmp_path: Path) -> None:
    """Ray's default (15) would put every camera and the detector behind any other process."""
    env = head_env(Settings(data_dir=tmp_path))
    assert env["RAY_worker_niceness"] == "0"
    assert env.items() >= serve_env(Settings(data_dir=tmp_path)).items()
    nicer = head_env(Settings(data_dir=tmp_path, cluster={"worker_niceness": 10}))
    assert nicer["RAY_worker_niceness"] == "10"
    assert head_env(Settings(data_dir=tmp_path, cluster={"serve_proxy": "ray"})) == {
        "RAY_worker_niceness": "0"
    }
