"""``refinenet-edu summary`` prints what checks outside the project read."""

from __future__ import annotations

import json

from refinenet_edu.cli import main


def test_summary_official_prints_the_parameter_count(capsys):
    assert main(["summary", "--preset", "official", "--backbone", "resnet101", "--num-classes", "21"]) == 0
    out = capsys.readouterr().out
    assert "118,052,437" in out
    assert "42,500,160" in out
    assert "1x21x128x128" in out  # scores at 1/4 of 512x512
    for name in ("refinenet4", "refinenet3", "refinenet2", "refinenet1"):
        assert name in out


def test_summary_json_and_variants(capsys):
    assert main(["summary", "--preset", "course", "--cascade", "single", "--num-classes", "8",
                 "--input-size", "96", "128", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output_shape"] == [1, 8, 96, 128]
    assert [b["name"] for b in data["blocks"]] == ["refinenet1"]
    assert len(data["blocks"][0]["inputs"]) == 4
    assert data["flops"] > 0


def test_summary_bad_input(capsys):
    assert main(["summary", "--num-classes", "0"]) == 2
    assert "num_classes=0" in capsys.readouterr().err
    assert main(["summary", "--input-size", "16", "64"]) == 2
    assert "at least 32" in capsys.readouterr().err
