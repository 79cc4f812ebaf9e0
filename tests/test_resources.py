"""Where shipped files and downloaded datasets are found (refinenet_edu.resources)."""

from __future__ import annotations

from pathlib import Path

import pytest

from refinenet_edu import resources
from refinenet_edu.datasets import load_dataset
from refinenet_edu.datasets.voc import MissingDataError

ROOT = Path(__file__).resolve().parents[1]


def test_from_a_checkout_downloads_go_beside_the_embedded_set(monkeypatch):
    monkeypatch.delenv("REFINENET_EDU_DATA", raising=False)
    assert resources.checkout_root() == ROOT
    assert resources.downloads_root() == ROOT / "data" == resources.resource("data")


def test_from_a_wheel_downloads_go_to_the_users_data_folder_not_site_packages(monkeypatch, tmp_path):
    monkeypatch.delenv("REFINENET_EDU_DATA", raising=False)
    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    monkeypatch.setattr(resources.sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resources.downloads_root() == tmp_path / "xdg" / "refinenet-edu"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resources.downloads_root() == tmp_path / "home" / ".local" / "share" / "refinenet-edu"
    assert resources.SHIPPED not in resources.downloads_root().parents
    monkeypatch.setattr(resources.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "appdata"))
    assert resources.downloads_root() == tmp_path / "appdata" / "refinenet-edu"
    monkeypatch.setenv("REFINENET_EDU_DATA", str(tmp_path / "mine"))
    assert resources.downloads_root() == tmp_path / "mine"


def test_load_dataset_looks_for_voc_in_the_downloads_root(monkeypatch, tmp_path):
    monkeypatch.setenv("REFINENET_EDU_DATA", str(tmp_path / "datasets"))
    with pytest.raises(MissingDataError) as info:
        load_dataset("voc2012", "val")
    assert str(tmp_path / "datasets") in str(info.value)


def test_every_results_set_a_notebook_reads_is_in_the_wheel():
    """A notebook names a shipped results set in its code (``LONGER_RESULTS = "ablation-60ep"``,
    ``resource("results", "losses", ...)``); a wheel has no checkout, so setup.py must copy each one."""
    shipped = {name for name, _ in _setup_shipped()}
    read = _folders_named_in_notebooks(ROOT / "results")
    assert {"ablation-60ep", "ablation-pretrained", "losses"} <= set(read)  # the scan finds them (09, 08)
    missing = {name: nb for name, nb in read.items() if f"results/{name}" not in shipped}
    assert not missing, f"notebooks read results sets a wheel does not carry (setup.py SHIPPED): {missing}"


def test_every_data_folder_a_notebook_reads_is_in_the_wheel():
    """The same for ``data/``: ``resource("data", "voc-shaped-sample")`` (10), ``"checkpoints"`` (07, 08, 10)."""
    shipped = {name for name, _ in _setup_shipped()}
    read = _folders_named_in_notebooks(ROOT / "data")
    assert {"checkpoints", "synthscenes", "voc-shaped-sample"} <= set(read)  # the scan finds them
    missing = {name: nb for name, nb in read.items() if f"data/{name}" not in shipped}
    assert not missing, f"notebooks read data folders a wheel does not carry (setup.py SHIPPED): {missing}"


def _folders_named_in_notebooks(parent: Path) -> dict[str, str]:
    """{name of a folder of ``parent`` that a notebook's code names as a string: the first notebook naming it}."""
    import ast
    import json

    folders = {p.name for p in parent.iterdir() if p.is_dir()}
    read = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Constant) and node.value in folders:
                    read.setdefault(node.value, nb.name)
    return read


def _setup_shipped():
    import ast

    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SHIPPED":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no SHIPPED")
