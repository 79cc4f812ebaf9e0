"""A reader who finishes a notebook, scrolls back and runs on from an earlier section gets no error, and
the notebook leaves nothing in the temporary folder once its kernel shuts down.

Each notebook runs top to bottom in FAST mode, then again from the section named below to the end, in the
same kernel (after the notebook's own clean-up cells have run). The kernel gets a temporary folder of its
own (``TMPDIR``), which must be empty after the kernel has shut down (but for PyTorch's own cache).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

#: notebook -> the heading a reader goes back to: every code cell from there to the end runs a second time
RERUN_FROM = {
    "06_data_pipeline": "## 2. Joint transforms",
    "07_training": "## 6. Checkpoints",
    "08_evaluation": "## 3b. Multi-scale",
    "10_beyond": "## 3. Your own data",
}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(RERUN_FROM))
def test_cells_run_again_after_the_clean_up_and_leave_no_temporary_files(name, tmp_path):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    start = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and c.source.startswith(RERUN_FROM[name]))
    kernel_tmp = tmp_path / "tmp"
    kernel_tmp.mkdir()
    env = dict(os.environ, CI="1", TMPDIR=str(kernel_tmp), MPLBACKEND="agg")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        for index, cell in enumerate(nb.cells[start:], start):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)  # raises CellExecutionError, naming the cell, on an error
    # PyTorch keeps a cache of its own there (torchinductor_<user>), shared by every run: not the notebook's
    assert sorted(p.name for p in kernel_tmp.iterdir() if not p.name.startswith("torchinductor_")) == []
