"""The notebooks run top to bottom against the running platform (the session stack), with the
credentials a user would give them in the environment, and find the data the API holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from sentinel.client import SentinelClient
from tests.integration.conftest import ClientDemo, wait_for

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
CELL_TIMEOUT_S = 180


def _run(name: str, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    printed = [
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream"
    ]
    lines = [ln for text in printed for ln in text.splitlines() if ln.startswith("SUMMARY ")]
    assert len(lines) == 1, printed
    return nb, json.loads(lines[0].removeprefix("SUMMARY "))


@pytest.fixture
def notebook_env(client_demo: ClientDemo, monkeypatch: pytest.MonkeyPatch) -> ClientDemo:
    """The kernel inherits these: the stack's URL, a viewer's API key, the demo camera."""
    monkeypatch.setenv("SENTINEL_URL", client_demo.stack.url)
    monkeypatch.setenv("SENTINEL_API_KEY", client_demo.viewer_key)
    monkeypatch.delenv("SENTINEL_TOKEN", raising=False)
    monkeypatch.setenv("SENTINEL_CAMERA", client_demo.camera_id)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # plots go inline, into the outputs
    return client_demo


def test_events_notebook(notebook_env: ClientDemo, tmp_path: Path) -> None:
    demo = notebook_env
    nb, summary = _run("events-and-incidents.ipynb", tmp_path)
    with SentinelClient(demo.stack.url, api_key=demo.viewer_key) as sc:
        events = list(sc.iter_events(camera_id=demo.camera_id))
        incidents = list(sc.iter_incidents(camera_id=demo.camera_id))
    assert summary == {
        "events": len(events),
        "incidents": len(incidents),
        "cameras": [demo.camera_id],
    }
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {}) or "image/jpeg" in out.get("data", {})
    ]
    assert len(images) >= 3  # the two plots and an incident's key frame


def test_search_notebook(notebook_env: ClientDemo, tmp_path: Path) -> None:
    demo = notebook_env
    with SentinelClient(demo.stack.url, api_key=demo.viewer_key) as sc:

        def indexed() -> Any:
            # Every incident closed and everything indexed: the answers stay put from here.
            incidents = list(sc.iter_incidents(camera_id=demo.camera_id))
            if any(i.status != "closed" for i in incidents):
                return None
            r = sc.search("a person walking", camera_id=demo.camera_id, limit=5)
            return r if r.items and r.index_backlog == 0 else None

        expected = wait_for(indexed, timeout=180, what="the demo camera closed and indexed")
    _, summary = _run("search.ipynb", tmp_path)
    assert summary["questions"] == 3
    assert summary["hits"]["a person walking"] == [h.id for h in expected.items]
    best = next(h for h in expected.items if h.kind == "event")
    assert summary["best"] == best.id
