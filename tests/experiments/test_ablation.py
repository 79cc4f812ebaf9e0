"""The ablation runner (``refinenet-edu ablate``), the comparison functions and the shipped results."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from refinenet_edu.cli import main
from refinenet_edu.experiments import comparison
from refinenet_edu.experiments.results import AblationResults, add_live_run, combine_results, load_predictions
from refinenet_edu.experiments.variants import DEFAULT_GRID, Variant, make_grid, parse_variant
from refinenet_edu.viz.plots import figure_png, plot_bars, plot_per_class, plot_predictions, plot_tradeoff

from _fake_results import CLASSES, fake_results, fake_run  # noqa: F401 (tests/_fake_results.py)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "results" / "ablation"

#: The tiny budget the runner tests use: a narrow model, 16 images, one epoch.
TINY = ["--subset", "16", "--epochs", "1", "--crop-size", "64", "--batch-size", "8",
        "--encoder-width", "8", "--widths", "8", "8", "8", "8", "--device", "cpu", "--eval-every", "1"]


# --------------------------------------------------------------------------
# variants and grids
# --------------------------------------------------------------------------


def test_default_grid_is_the_papers_comparisons():
    names = [v.name for v in DEFAULT_GRID]
    assert names == ["4-cascaded-crp4", "2-cascaded-crp4", "single-crp4", "4-cascaded-2-scale-crp4",
                     "4-cascaded-crp0", "4-cascaded-crp2"]


@pytest.mark.parametrize("name", ["4-cascaded-crp4", "single-crp0", "4-cascaded-2-scale-crp4",
                                  "4-cascaded-crp4-rcu3", "2-cascaded-crp2-lw"])
def test_variant_names_round_trip(name):
    v = parse_variant(name)
    assert v.name == name and parse_variant(v) is v
    assert v.overrides()["cascade"] == v.cascade


@pytest.mark.parametrize("bad", ["", "4-cascaded", "triple-crp4", "single-crpX", "single-crp4-rcu1-lw"])
def test_bad_variant_names_say_what_is_expected(bad):
    with pytest.raises(ValueError, match="variant|cascade|light-weight"):
        parse_variant(bad)


def test_grids():
    oat = make_grid(["single"], [0], [3], light_weight=True)
    assert [v.name for v in oat] == ["4-cascaded-crp4", "single-crp4", "4-cascaded-crp0", "4-cascaded-crp4-rcu3",
                                     "4-cascaded-crp4-lw"]
    full = make_grid(["single", "4-cascaded"], [0, 4], grid="full")
    assert {v.name for v in full} == {"single-crp0", "single-crp4", "4-cascaded-crp0", "4-cascaded-crp4"}
    with pytest.raises(ValueError, match="grid"):
        make_grid(grid="everything")


def test_light_weight_variant_builds_the_light_weight_decoder():
    from refinenet_edu.nn.config import make_config

    cfg = make_config("course", **Variant(light_weight=True).overrides())
    assert (cfg.kernel_size, cfg.adaptive_rcus, cfg.output_rcus) == (1, 0, 0)


# --------------------------------------------------------------------------
# the command: a tiny grid, resume, the same budget enforced
# --------------------------------------------------------------------------


def test_ablate_tiny_grid_resumes_and_refuses_another_budget(tmp_path, capsys):
    out = tmp_path / "abl"
    argv = ["ablate", "--variants", "4-cascaded-crp4", "single-crp4", "--seeds", "0", "1", "--out", str(out), *TINY]
    assert main(argv) == 0
    log = capsys.readouterr().out
    assert "4 run(s) to train" in log
    results = AblationResults.load(out)
    assert results.done() == {("4-cascaded-crp4", 0), ("4-cascaded-crp4", 1), ("single-crp4", 0), ("single-crp4", 1)}
    run = results.runs[0]
    assert set(run["iou"]) == set(CLASSES)
    assert set(run["boundary_miou"]) == {"1", "2", "4", "8", "16"}
    assert 0.0 <= run["miou"] <= 1.0 and run["train_seconds"] > 0 and run["epochs"] == 1
    v = results.variants["4-cascaded-crp4"]
    assert v["params"] > 0 and v["flops"] > 0 and v["flops_input"] == [64, 64]
    assert all(ms > 0 for ms in v["inference_ms"].values())
    prov = results.data["provenance"]["invocations"][0]
    for key in ("command", "commit", "device", "torch", "torchvision", "python", "wall_seconds", "date"):
        assert key in prov, key
    assert prov["command"].startswith("refinenet-edu ablate")
    assert results.data["budget"]["train"]["epochs"] == 1
    assert results.data["dataset"]["sha256"]
    # predictions of the first seed only, as uint8 masks of the validation subset
    preds = sorted(p.name for p in (out / "predictions").iterdir())
    assert preds == ["4-cascaded-crp4__seed0.npz", "single-crp4__seed0.npz"]
    masks, ids = load_predictions(results, "single-crp4")
    assert masks.dtype == np.uint8 and masks.shape == (4, 128, 128) and len(ids) == 4
    # CSV: one row per run, one column per class
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert len(rows) == 4 and "iou_boat" in rows[0] and "boundary_miou_2px" in rows[0]
    summary = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert [r["variant"] for r in summary] == ["4-cascaded-crp4", "single-crp4"] and summary[0]["runs"] == "2"

    # resume: nothing left to train
    assert main(argv) == 0
    assert "0 run(s) to train, 4 already" in capsys.readouterr().out
    assert len(AblationResults.load(out).runs) == 4

    # one more seed trains only that seed
    assert main(["ablate", "--variants", "single-crp4", "--seeds", "2", "--out", str(out), *TINY]) == 0
    assert ("single-crp4", 2) in AblationResults.load(out).done()

    # another budget into the same file is refused, naming the difference
    bad = [a if a != "1" else "2" for a in argv]  # --epochs 2 (and --eval-every 2)
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "another budget" in err and "epochs" in err


def test_ablate_trains_with_the_loss_asked_for_and_keeps_losses_apart(tmp_path, capsys):
    def ablate(out, *extra):
        return main(["ablate", "--variants", "4-cascaded-crp4", "--seeds", "0", "--out", str(out), "--no-timing",
                     *TINY, *extra])

    out = tmp_path / "weighted"
    assert ablate(out, "--loss", "weighted-cross-entropy") == 0
    budget = AblationResults.load(out).data["budget"]["train"]
    assert budget["loss"] == "weighted-cross-entropy" and "focal_gamma" not in budget  # gamma: focal only
    capsys.readouterr()
    # the loss is part of the budget: plain cross-entropy into the same folder is refused, naming the loss
    assert ablate(out) == 2
    err = capsys.readouterr().err
    assert "another budget" in err and "train.loss: 'weighted-cross-entropy' there" in err
    assert ablate(out, "--list", "--loss", "focal") == 0
    assert "loss focal" in capsys.readouterr().out
    focal = tmp_path / "focal"
    assert ablate(focal, "--loss", "focal") == 0
    assert AblationResults.load(focal).data["budget"]["train"]["focal_gamma"] == 2.0


def test_weighted_cross_entropy_in_an_ablation_weighs_by_the_stored_masks():
    """ablate and train must give the same class weights: the stored masks' frequencies, not those of one
    pass of random crops (which pad with the ignore label and draw random numbers)."""
    import random

    import torch

    from refinenet_edu.datasets import load_dataset, train_transforms
    from refinenet_edu.engine.loop import make_criterion
    from refinenet_edu.experiments.runner import budget_for, load_splits

    cfg = budget_for("course", loss="weighted-cross-entropy")
    in_memory, _ = load_splits("synthscenes", cfg, subset=40)
    folder = torch.utils.data.Subset(load_dataset("synthscenes", "train", train_transforms(cfg.crop_size)), range(40))
    torch.manual_seed(5)
    expected_draw = torch.rand(1)
    random.seed(5)
    torch.manual_seed(5)
    ablated = make_criterion(cfg, in_memory, 7).class_weights
    # the histogram drew no random numbers (the crops of the first epoch stay those of the other losses)
    assert random.random() == random.Random(5).random() and torch.equal(torch.rand(1), expected_draw)
    assert torch.allclose(ablated, make_criterion(cfg, folder, 7).class_weights)


@pytest.mark.parametrize("folder, epochs", [("ablation", 30), ("ablation-60ep", 60)])
def test_the_shipped_results_match_the_budget_ablate_computes_today(folder, epochs):
    """Resuming or re-timing a shipped set must not be refused: results files from before the loss
    option (and the step schedule) were trained with plain cross-entropy and have no key for it."""
    from refinenet_edu.experiments.runner import _budget_dict, budget_for

    shipped = AblationResults.load(REPO / "results" / folder)
    today = _budget_dict("course", budget_for("course", epochs=epochs, eval_every=5), None, {}, shipped.data["dataset"])
    assert today == shipped.data["budget"]


def test_ablate_list_and_bad_input(tmp_path, capsys):
    assert main(["ablate", "--list", "--out", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert all(v.name in listed for v in DEFAULT_GRID)
    assert main(["ablate", "--variants", "triple-crp4", "--out", str(tmp_path)]) == 2
    assert "variant 'triple-crp4'" in capsys.readouterr().err
    assert main(["ablate", "--variants", "single-crp4", "--subset", "0", "--out", str(tmp_path)]) == 2


# --------------------------------------------------------------------------
# comparison functions
# --------------------------------------------------------------------------


def test_summarize_mean_std_and_values():
    r = fake_results()
    s = comparison.summarize(r, "miou")
    assert list(s) == ["4-cascaded-crp4", "single-crp4", "4-cascaded-crp0"]
    assert s["4-cascaded-crp4"].mean == pytest.approx(0.71)
    assert s["4-cascaded-crp4"].std == pytest.approx(0.01)  # sample std of 0.70, 0.71, 0.72
    assert s["single-crp4"].values == (0.60, 0.61, 0.62) and s["single-crp4"].n == 3
    assert comparison.summarize(r, "iou/boat")["single-crp4"].mean == pytest.approx(0.6)
    assert comparison.summarize(r, "context_iou")["4-cascaded-crp4"].mean == pytest.approx(0.8)
    assert comparison.summarize(r, "params")["4-cascaded-crp4"].mean == 3e6
    assert comparison.summarize(r, "inference_ms/cpu")["single-crp4"].mean == 8.0
    assert comparison.summarize(r, "miou", ["single-crp4"]).keys() == {"single-crp4"}


def test_compare_tells_a_difference_from_seed_noise():
    r = fake_results()
    big = comparison.compare(r, "4-cascaded-crp4", "single-crp4")
    assert big.difference == pytest.approx(0.10)
    assert big.beyond_spread and not big.ranges_overlap and big.test().p < 0.001  # Welch t = 12.2, 4 df
    assert "more than the seed spread" in big.sentence()
    small = comparison.compare(r, "4-cascaded-crp4", "4-cascaded-crp0")
    assert not small.beyond_spread and small.ranges_overlap
    assert "within the seed spread" in small.sentence()
    with pytest.raises(KeyError, match="no runs of 'nope'"):
        comparison.compare(r, "nope", "single-crp4")


def test_findings_and_table():
    r = fake_results()
    found = {(c.a, c.b, c.metric): c for c in comparison.findings(r)}
    assert found[("4-cascaded-crp4", "single-crp4", "miou")].beyond_spread
    assert found[("4-cascaded-crp4", "4-cascaded-crp0", "context_iou")].difference == pytest.approx(0.10)
    table = comparison.format_table(r, ["miou", "boundary_miou/2", "params"])
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["variant", "seeds", "mIoU"]
    assert "71.0 ± 1.0" in table and "61.0 ± 1.0" in table and "3.00 M" in table


def test_metric_names_and_labels():
    r = fake_results()
    names = comparison.metric_names(r)
    for m in ("miou", "iou/boat", "boundary_miou/2", "context_iou", "thin_iou", "params", "inference_ms/cpu"):
        assert m in names
    assert comparison.metric_label("boundary_miou/2") == "boundary mIoU (within 2 px)"
    assert math.isnan(comparison.metric_value(r, {"variant": "x"}, "miou"))


def test_live_runs_are_kept_apart():
    r = fake_results()
    rec = fake_run("single-crp4", 0, 0.30)
    rec["epochs"] = 2
    new, group = add_live_run(r, rec, costs={"params": 5, "inference_ms": {"cpu": 1.0}},
                                  predictions=np.zeros((2, 8, 8), np.uint8))
    assert group == "single-crp4 (now, 2 ep)"
    assert len(r.runs) == 9 and len(new.runs) == 10  # the original is unchanged
    s = comparison.summarize(new, "miou")
    assert s["single-crp4"].mean == pytest.approx(0.61) and s[group].mean == pytest.approx(0.30)
    assert comparison.summarize(new, "params")[group].mean == 5
    assert load_predictions(new, group)[0].shape == (2, 8, 8)
    again, group2 = add_live_run(new, rec)
    assert group2 == "single-crp4 (now, 2 ep) #2"


def test_figures_are_pngs(tmp_path):
    r = fake_results(tmp_path)
    for fig in (plot_bars(r, None, "miou"), plot_tradeoff(r, None, "miou", "params"),
                plot_tradeoff(r, None, "iou/boat", "inference_ms/cpu"), plot_per_class(r)):
        png = figure_png(fig)
        assert png.startswith(b"\x89PNG")
    masks, ids = load_predictions(r, "single-crp4")
    assert ids == ["a", "b", "c"] and int(masks[0, 0, 0]) == 1
    image = np.zeros((32, 32, 3), np.uint8)
    fig = plot_predictions(image, masks[0], {"single-crp4": masks[0], "none": None},
                               r.data["dataset"]["palette"], CLASSES)
    assert figure_png(fig).startswith(b"\x89PNG")


def test_results_file_rejects_foreign_json(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not an ablation results file"):
        AblationResults.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        AblationResults.load(tmp_path / "missing")


# --------------------------------------------------------------------------
# the shipped results
# --------------------------------------------------------------------------

# The shipped sets hold no run of the Fig. 7(c) network (results/ablation/README.md says why).
REQUIRED = {v.name for v in DEFAULT_GRID} - {"4-cascaded-2-scale-crp4"}


@pytest.mark.parametrize("folder", ["ablation", "ablation-60ep"])
def test_shipped_results_are_complete_and_consistent(folder):
    path = REPO / "results" / folder
    r = AblationResults.load(path)
    seeds = {}
    for run in r.runs:
        seeds.setdefault(run["variant"], set()).add(run["seed"])
    assert REQUIRED <= set(seeds)
    assert all(len(s) >= 3 for s in seeds.values())
    budget = r.data["budget"]
    assert budget["subset"] is None and budget["data"]["sha256"] == r.data["dataset"]["sha256"]
    assert {run["epochs"] for run in r.runs} == {budget["train"]["epochs"]}  # one budget for every run
    assert {run["val_images"] for run in r.runs} == {150}
    first = r.data["provenance"]["invocations"][0]
    for key in ("command", "commit", "device", "torch", "torchvision", "wall_seconds", "jobs"):
        assert first.get(key) is not None, key
    for run in r.runs:
        assert run["train_seconds"] > 0 and set(run["iou"]) == set(CLASSES)
        if run.get("predictions"):
            assert (path / run["predictions"]).is_file()
    for name in seeds:
        v = r.variants[name]
        assert v["params"] > 0 and v["flops"] > 0 and v["inference_ms"]
    rows = list(csv.DictReader(io.StringIO((path / "results.csv").read_text())))
    assert len(rows) == len(r.runs)
    assert json.loads((path / "results.json").read_text())["format"] == "refinenet-edu-ablation"


def test_the_readme_tables_are_the_shipped_numbers():
    readme = (SHIPPED / "README.md").read_text()
    metrics = ("miou", "boundary_miou/1", "boundary_miou/2", "boundary_miou/4", "boundary_accuracy/2",
               "context_iou", "thin_iou")
    for folder in ("ablation", "ablation-60ep"):
        assert comparison.format_table(AblationResults.load(REPO / "results" / folder), metrics) in readme, folder


LOSSES_SHIPPED = REPO / "results" / "losses"


def test_the_shipped_loss_sets_differ_in_the_loss_alone():
    """results/losses (notebook 08, section 3c): the course model, one folder per loss, 3 seeds each, the same
    budget and data otherwise, and the README's table is these numbers."""
    from refinenet_edu.engine.criterion import LOSSES

    sets = {name: AblationResults.load(LOSSES_SHIPPED / name) for name in LOSSES}
    # seed 1 of cross-entropy blew up (kept, flagged); seed 3 was trained so that every loss has 3 runs
    seeds = {"cross-entropy": (0, 1, 2, 3), "weighted-cross-entropy": (0, 1, 2), "focal": (0, 1, 2)}
    for name, r in sets.items():
        assert {(run["variant"], run["seed"]) for run in r.runs} == {("4-cascaded-crp4", s) for s in seeds[name]}, name
        assert r.data["budget"]["train"].get("loss", "cross-entropy") == name
        assert r.data["budget"]["subset"] is None and {run["val_images"] for run in r.runs} == {150}
        assert {run["epochs"] for run in r.runs} == {30}
        assert (LOSSES_SHIPPED / name / "predictions" / "4-cascaded-crp4__seed0.npz").is_file()
        assert r.data["dataset"]["sha256"] == AblationResults.load(SHIPPED).data["dataset"]["sha256"]
    combined = combine_results({name: LOSSES_SHIPPED / name for name in LOSSES})
    differences = {d.split(":")[0] for ds in combined.data["budget_differences"].values() for d in ds}
    assert differences == {"train.loss"}
    kept, left_out = comparison.without_diverged(combined)
    assert left_out == [("cross-entropy", 1, 10)]
    assert {run_group: comparison.summarize(kept)[run_group].n for run_group in LOSSES} == dict.fromkeys(LOSSES, 3)
    readme = (LOSSES_SHIPPED / "README.md").read_text()
    metrics = ("miou", "iou/wire", "iou/dot", "thin_iou", "iou/boat", "iou/background")
    assert comparison.format_table(combined, metrics) in readme and comparison.format_table(kept, metrics) in readme


def test_a_failed_run_does_not_stop_the_grid(tmp_path, monkeypatch, capsys):
    import refinenet_edu.experiments.runner as ablation

    real = ablation._run_spec

    def flaky(spec):
        if spec.variant == "single-crp4":
            raise RuntimeError("out of memory (simulated)")
        return real(spec)

    monkeypatch.setattr(ablation, "_run_spec", flaky)
    out = tmp_path / "abl"
    assert main(["ablate", "--variants", "single-crp4", "4-cascaded-crp4", "--seeds", "0", "--out", str(out),
                 "--no-timing", *TINY]) == 2  # one line, no traceback (refinenet_edu.cli.errors)
    assert re.search(r"error: 1 run\(s\) failed.*single-crp4 seed 0", capsys.readouterr().err)
    results = AblationResults.load(out)
    assert results.done() == {("4-cascaded-crp4", 0)}
    assert "single-crp4 seed 0" in results.data["provenance"]["invocations"][-1]["failed"][0]


def test_a_run_that_blew_up_is_flagged_in_the_log(tmp_path, monkeypatch, capsys):
    import refinenet_edu.experiments.runner as ablation

    real = ablation._run_spec

    def blows_up(spec):
        record = real(spec)
        record["history"] = [{"epoch": 1, "loss": 1.4, "miou": None}, {"epoch": 2, "loss": 0.7, "miou": None},
                             {"epoch": 3, "loss": 1582.3, "miou": 0.07}]
        return record

    monkeypatch.setattr(ablation, "_run_spec", blows_up)
    assert main(["ablate", "--variants", "4-cascaded-crp4", "--seeds", "0", "--out", str(tmp_path / "abl"),
                 "--no-timing", *TINY]) == 0
    log = capsys.readouterr().out
    assert "warning: its training loss blew up (epoch 3: training loss 1582, over 10x the 0.7 of the lowest epoch before it)" in log
    assert AblationResults.load(tmp_path / "abl").done() == {("4-cascaded-crp4", 0)}  # kept, and flagged


def test_runs_trained_side_by_side_log_one_line_per_epoch(capsys):
    from refinenet_edu.experiments.runner import RunSpec, _run_spec, budget_for

    cfg = budget_for("course", epochs=2, crop_size=64, batch_size=8, device="cpu", eval_every=1)
    spec = RunSpec(variant="single-crp4", seed=0, train_config=cfg.to_dict(), subset=16,
                   model_overrides={"encoder_width": 8, "widths": (8, 8, 8, 8)}, log_epochs=True)
    record = _run_spec(spec)
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines() if "epoch" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["single-crp4 seed 0"] * 2
    assert lines[0].startswith("single-crp4 seed 0: epoch 1/2  loss ") and "val mIoU" in lines[0]
    assert lines[1].startswith("single-crp4 seed 0: epoch 2/2") and record["epochs"] == 2


def _pilot_row(pilot: str, name: str, run: dict, boundary_2px: float) -> str:
    """A row of the pilots README: pilot, run, mIoU, boat, car, wire, dot, boundary mIoU within 2 px (in %)."""
    cells = [pilot, name, run["miou"], *(run["iou"][c] for c in ("boat", "car", "wire", "dot")), boundary_2px]
    return "| " + " | ".join(c if isinstance(c, str) else f"{100 * c:.1f}" for c in cells) + " |"


def test_the_pilot_tables_are_the_recorded_numbers():
    """results/pilots-256/README.md quotes its JSON files to the digit (bold marks a pilot's best mIoU)."""
    folder = REPO / "results" / "pilots-256"
    readme = (folder / "README.md").read_text().replace("**", "")
    for path in sorted(folder.glob("[abc]-*.json")):  # ablate output; d- is the pretrained-encoder script's
        pilot = path.name[0].upper()
        results = AblationResults.load(path)
        assert results.data["budget"]["train"]["epochs"] == 30 and len(results.runs) >= 2
        for run in results.runs:
            row = _pilot_row(pilot, run["label"], run, run["boundary_miou"]["2"])
            assert row in readme, row


def test_the_pretrained_encoder_pilot_table_is_the_recorded_numbers():
    folder = REPO / "results" / "pilots-256"
    readme = (folder / "README.md").read_text().replace("**", "")
    runs = json.loads((folder / "d-pretrained-encoder.json").read_text())["runs"]
    assert sorted({r["seed"] for r in runs}) == [0, 1, 2]
    for run in runs:
        row = _pilot_row("D", f"{run['variant']} seed {run['seed']}", run, run["boundary_miou_2"])
        assert row in readme, row


def test_the_pretrained_encoder_ablation_started_from_the_shipped_encoder():
    """results/ablation-pretrained: the paper's protocol, on the shipped data, quoted to the digit in its README."""
    import hashlib

    folder = REPO / "results" / "ablation-pretrained"
    r = AblationResults.load(folder)
    budget = r.data["budget"]
    encoder = REPO / "data" / "checkpoints" / budget["encoder_weights"]["file"]
    assert hashlib.sha256(encoder.read_bytes()).hexdigest() == budget["encoder_weights"]["sha256"]
    assert budget["train"]["encoder_lr_ratio"] == 0.1 and budget["train"]["epochs"] == 30
    assert budget["data"]["sha256"] == AblationResults.load(SHIPPED).data["budget"]["data"]["sha256"]
    info = json.loads(encoder.with_name(encoder.name + ".json").read_text())
    # pretrained on other images (another seed), without the boat/car distinction the ablation measures
    assert info["data"]["seed"] != r.data["dataset"]["seed"] and info["merge"] == [["boat", "car"]]
    seeds: dict[str, set] = {}
    for run in r.runs:
        seeds.setdefault(run["variant"], set()).add(run["seed"])
        assert run["val_images"] == 150 and run["epochs"] == 30
    assert seeds == {v: {0, 1, 2} for v in ("4-cascaded-crp4", "4-cascaded-crp0", "single-crp4")}
    assert all(v["inference_ms"] for v in r.variants.values())
    metrics = ("miou", "boundary_miou/1", "boundary_miou/2", "boundary_miou/4", "boundary_accuracy/2",
               "context_iou", "thin_iou")
    assert comparison.format_table(r, metrics) in (folder / "README.md").read_text()


def test_the_coarse_pilot_table_is_the_recorded_numbers():
    folder = REPO / "results" / "pilots-128"
    r = AblationResults.load(folder / "e-coarse-pretrained.json")
    assert r.data["budget"]["train"]["encoder_lr_ratio"] == 0.1 and r.data["budget"]["encoder_weights"]["sha256"]
    assert {(run["variant"], run["seed"]) for run in r.runs} == {
        (v, s) for v in ("4-cascaded-crp4", "4-cascaded-crp0", "single-crp4", "single-crp0") for s in (0, 1, 2)}
    table = comparison.format_table(r, ("miou", "boundary_miou/2", "context_iou", "thin_iou"))
    assert table in (folder / "README.md").read_text()


# --------------------------------------------------------------------------
# statistics of a comparison
# --------------------------------------------------------------------------


def _two_variant_results(a_values, b_values, seeds=None):
    seeds = seeds or list(range(len(a_values)))
    runs = [{"variant": "a", "seed": s, "miou": v} for s, v in zip(seeds, a_values)]
    runs += [{"variant": "b", "seed": s, "miou": v} for s, v in zip(seeds, b_values)]
    return SimpleNamespace(runs=runs, class_names=[], variants={}, data={})


def _loss_set(folder: Path, loss: str, wire: list[float], *, sha: str = "abc") -> Path:
    """A results folder of one variant trained with ``loss``, wire IoU per seed as given, predictions of seed 0."""
    r = AblationResults()
    r.data["dataset"] = {"class_names": CLASSES, "num_classes": 7, "sha256": sha}
    r.data["budget"] = {"preset": "course", "train": {"epochs": 30, **({} if loss == "cross-entropy" else {"loss": loss}),
                                                        **({"focal_gamma": 2.0} if loss == "focal" else {})}}
    r.variants["4-cascaded-crp4"] = {**parse_variant("4-cascaded-crp4").as_dict(), "params": 1000}
    for seed, w in enumerate(wire):
        run = fake_run("4-cascaded-crp4", seed, 0.6)
        run["iou"]["wire"] = w
        r.add_run(run)
    (folder / "predictions").mkdir(parents=True)
    np.savez_compressed(folder / "predictions" / "4-cascaded-crp4__seed0.npz", masks=np.full((2, 8, 8), len(wire), np.uint8),
                        ids=np.array(["a", "b"]))
    r.runs[0]["predictions"] = "predictions/4-cascaded-crp4__seed0.npz"
    r.save(folder)
    return folder


def test_combined_sets_compare_losses_seed_by_seed(tmp_path):
    plain = _loss_set(tmp_path / "ce", "cross-entropy", [0.40, 0.42, 0.41])
    weighted = _loss_set(tmp_path / "wce", "weighted-cross-entropy", [0.50, 0.53, 0.51, 0.52])
    both = combine_results({"cross-entropy": plain, "weighted": weighted})
    assert comparison.groups(both) == ["cross-entropy", "weighted"]
    stats = comparison.summarize(both, "iou/wire")
    assert stats["weighted"].n == 4 and stats["weighted"].seeds == (0, 1, 2, 3)
    assert stats["cross-entropy"].mean == pytest.approx(0.41)
    # what differs between the sets is stated, with the loss a results file from before the option leaves out
    assert both.data["budget_differences"] == {
        "cross-entropy": [], "weighted": ["train.loss: 'cross-entropy' in cross-entropy, 'weighted-cross-entropy' in weighted"]}
    # the paired test pairs the seeds both sets ran
    three = combine_results({"cross-entropy": plain, "weighted": _loss_set(tmp_path / "wce3", "weighted-cross-entropy",
                                                                           [0.50, 0.53, 0.51])})
    c = comparison.compare(three, "weighted", "cross-entropy", "iou/wire")
    assert c.paired
    t = c.test(paired=True)
    assert t.df == 2 and t.difference == pytest.approx((0.10 + 0.11 + 0.10) / 3)
    assert 0 < t.low < t.difference < t.high  # every seed gains about 0.1
    # each set's predictions are read from its own folder
    masks, ids = load_predictions(both, "weighted")
    assert int(masks[0, 0, 0]) == 4 and ids == ["a", "b"]
    masks, _ = load_predictions(both, "cross-entropy")
    assert int(masks[0, 0, 0]) == 3


def test_combining_sets_of_other_data_or_several_variants_is_refused(tmp_path):
    plain = _loss_set(tmp_path / "ce", "cross-entropy", [0.40, 0.42])
    other = _loss_set(tmp_path / "other", "focal", [0.40, 0.42], sha="def")
    with pytest.raises(ValueError, match="other data"):
        combine_results({"a": plain, "b": other})
    with pytest.raises(ValueError, match=r"runs of \['4-cascaded-crp0', '4-cascaded-crp4', 'single-crp4'\]"):
        combine_results({"a": fake_results()})
    assert comparison.groups(combine_results({"a": fake_results()}, variant="single-crp4")) == ["a"]
    with pytest.raises(ValueError, match="no runs of 'single-crp0'"):
        combine_results({"a": fake_results()}, variant="single-crp0")


def test_a_run_whose_loss_blew_up_is_named_and_left_out():
    def history(*losses):
        return [{"epoch": i + 1, "loss": v} for i, v in enumerate(losses)]

    healthy = {**fake_run("4-cascaded-crp4", 0, 0.65), "history": history(1.4, 1.0, 0.9, 0.95, 0.7, 0.6)}
    # seed 1 of results/losses/cross-entropy: 0.67 at epoch 9, then 1582 (and the net predicts background after)
    blown = {**fake_run("4-cascaded-crp4", 1, 0.07), "history": history(1.38, 1.04, 0.67, 1582.3, 15211.0, 1.43)}
    assert comparison.diverged(healthy) is None and comparison.diverged(blown) == 4
    assert comparison.diverged({**healthy, "history": history(1.0, float("nan"))}) == 2
    assert comparison.diverged({**healthy, "history": history(1.0, 0.5, 4.0)}) is None  # 8x: noisy, not a blow-up
    r = AblationResults()
    r.add_run(healthy)
    r.add_run(blown)
    kept, left_out = comparison.without_diverged(r)
    assert left_out == [("4-cascaded-crp4", 1, 4)]
    assert [run["seed"] for run in kept.runs] == [0] and len(r.runs) == 2  # the results themselves keep both
    assert comparison.summarize(kept)["4-cascaded-crp4"].n == 1


def test_the_interval_of_a_mean_is_students_t():
    from scipy import stats as st

    s = comparison.Stat(0.5, 0.02, 3, (0.48, 0.5, 0.52))
    low, high = s.interval()
    assert high - 0.5 == pytest.approx(st.t.ppf(0.975, 2) * 0.02 / 3 ** 0.5) and low == pytest.approx(1.0 - high)
    assert (high - low) / 2 == pytest.approx(4.303 * 0.02 / 3 ** 0.5, rel=1e-3)  # 4.30 standard errors with 3 seeds
    assert all(math.isnan(v) for v in comparison.Stat(0.5, 0.0, 1, (0.5,)).interval())


def test_welch_and_paired_tests_match_scipy():
    from scipy import stats as st

    a, b = [0.640, 0.655, 0.649, 0.661], [0.631, 0.640, 0.645, 0.636]
    c = comparison.compare(_two_variant_results(a, b), "a", "b")
    welch, paired = c.test(), c.test(paired=True)
    assert welch.test == "Welch t" and paired.test == "paired t" and c.paired
    assert welch.p == pytest.approx(st.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert paired.p == pytest.approx(st.ttest_rel(a, b).pvalue, rel=1e-9)
    ci = st.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (welch.low, welch.high) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))
    assert welch.low < welch.difference < welch.high


def test_a_paired_test_needs_the_same_seeds():
    c = comparison.compare(_two_variant_results([0.6, 0.62, 0.61], [0.58, 0.6, 0.59], seeds=[0, 1, 2]), "a", "b")
    assert c.paired
    runs = _two_variant_results([0.6, 0.62, 0.61], [0.58, 0.6, 0.59])
    runs.runs[-1]["seed"] = 7
    c2 = comparison.compare(runs, "a", "b")
    assert not c2.paired
    with pytest.raises(ValueError, match="same seeds"):
        c2.test(paired=True)


def test_one_seed_gives_no_interval():
    t = comparison.compare(_two_variant_results([0.6], [0.5]), "a", "b").test()
    assert math.isnan(t.p) and math.isnan(t.low) and not t.excludes_zero


def test_holm_adjusts_a_family_of_p_values():
    # Holm (1979): sorted p 0.01, 0.02, 0.03, 0.5 over 4 tests -> 0.04, 0.06, 0.06, 0.5
    assert comparison.holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert comparison.holm([]) == []


def test_seeds_needed_is_the_textbook_sample_size():
    # A two-sample t-test for an effect of one standard deviation at alpha 0.05 and 80% power
    # needs 17 per group (Cohen's d = 1; the normal approximation says 16).
    assert comparison.seeds_needed(1.0, 1.0) == 17
    assert comparison.seeds_needed(0.01, 0.005) < comparison.seeds_needed(0.01, 0.01)
    assert comparison.seeds_needed(0.01, 0.005, paired=True) <= comparison.seeds_needed(0.01, 0.005)
    with pytest.raises(ValueError):
        comparison.seeds_needed(0.01, 0.0)
