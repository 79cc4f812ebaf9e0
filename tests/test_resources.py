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
