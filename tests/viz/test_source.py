"""show_source prints library code whole, headed by its file; an instructor can withhold what an assignment asks for."""

from __future__ import annotations

from refinenet_edu.nn.components import ResidualConvUnit
from refinenet_edu.viz.source import WITHHOLD_VARIABLE, show_source


def test_show_source_prints_the_whole_class_headed_by_its_file(capsys, monkeypatch):
    monkeypatch.delenv(WITHHOLD_VARIABLE, raising=False)
    show_source(ResidualConvUnit)
    out = capsys.readouterr().out
    assert out.startswith("# refinenet_edu/nn/components.py\nclass ResidualConvUnit(nn.Module):")
    assert "def forward" in out


def test_a_withheld_name_prints_a_note_and_no_code(capsys, monkeypatch):
    monkeypatch.setenv(WITHHOLD_VARIABLE, "ChainedResidualPooling, ResidualConvUnit")
    show_source(ResidualConvUnit)
    show_source(ResidualConvUnit.forward)
    out = capsys.readouterr().out
    assert "withheld by your instructor" in out and "def forward" not in out and "conv2" not in out
