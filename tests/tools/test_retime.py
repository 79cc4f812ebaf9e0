"""``./course retime``: the inference times of a finished results set, measured again on this machine."""

from __future__ import annotations

import json

from refinenet_edu.engine.runtime import describe_device, resolve_device
from refinenet_edu.experiments.results import AblationResults
from refinenet_edu.experiments.variants import parse_variant
from tooling.cli import main as tooling_main


def test_retime_adds_this_devices_time_replaces_its_earlier_one_and_records_provenance(tmp_path, capsys):
    out = tmp_path / "ab"
    results = AblationResults()
    results.data["budget"] = {"preset": "course", "train": {"crop_size": 32},
                              "model_overrides": {"encoder_width": 8, "widths": [8, 8, 8, 16]}}
    results.data["dataset"] = {"num_classes": 7}
    results.variants["single-crp4"] = {**parse_variant("single-crp4").as_dict(), "inference_ms": {"a GPU": 1.5}}
    results.save(out)
    cpu = describe_device(resolve_device("cpu"))
    argv = ["retime", "--out", str(out), "--device", "cpu", "--precision", "fp32", "--repeats", "2"]

    assert tooling_main(argv) == 0
    assert "inference single-crp4:" in capsys.readouterr().out
    entry = AblationResults.load(out).variants["single-crp4"]
    assert set(entry["inference_ms"]) == {"a GPU", cpu} and entry["inference_ms"][cpu] > 0
    settings = entry["inference_settings"][cpu]
    assert settings["statistic"] == "min of 2 after 5 warm-up" and settings["input_size"] == [32, 32]
    assert settings["precision"] == "float32" and settings["batch"] == 1

    data = json.loads((out / "results.json").read_text())
    data["variants"]["single-crp4"]["inference_ms"][cpu] = 12345.0
    (out / "results.json").write_text(json.dumps(data))
    assert tooling_main(argv) == 0
    again = AblationResults.load(out)
    times = again.variants["single-crp4"]["inference_ms"]
    assert set(times) == {"a GPU", cpu} and times["a GPU"] == 1.5 and times[cpu] != 12345.0
    invocations = again.data["provenance"]["invocations"]
    assert len(invocations) == 2 and all(i["retime"] and i["device"] == cpu for i in invocations)
    assert invocations[0]["command"].startswith("course retime --out") and invocations[0]["wall_seconds"] >= 0
