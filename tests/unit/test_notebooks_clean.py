"""The notebooks in git carry no outputs (they are executed by tests/integration/test_notebooks)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {
        "events-and-incidents.ipynb",
        "search.ipynb",
        "hard-examples-and-curation.ipynb",
        "training-in-mlflow.ipynb",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name} cell {i} carries outputs"
        assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert set(nb.metadata) <= {"kernelspec", "language_info", "title"}, nb.metadata.keys()
