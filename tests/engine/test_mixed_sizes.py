"""Images of any size, everywhere: validation in train and ablate, evaluate --save-predictions,
predict, the dashboard's train-now. On a generated PASCAL VOC-shaped set (VOC layout, 21
classes, 255 borders, sizes 75x100, 100x75, 67x100, 41x57 (smaller than the 64 crop), ...)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from refinenet_edu import build_refinenet
from refinenet_edu.cli import main
from refinenet_edu.datasets import eval_transforms, load_dataset
from refinenet_edu.datasets.loading import collate_images, eval_loader
from refinenet_edu.engine.evaluation import evaluate
from tooling.voc_shaped import make_voc_shaped


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = make_voc_shaped(tmp_path_factory.mktemp("voc"), train=6, val=4)
    return root / "VOCdevkit" / "VOC2012"


def image_sizes(folder, split):
    ids = (folder / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
    return {i: Image.open(folder / "JPEGImages" / f"{i}.jpg").size for i in ids}


def test_the_set_has_mixed_and_odd_sizes_and_one_image_below_the_crop(voc):
    sizes = list(image_sizes(voc, "val").values()) + list(image_sizes(voc, "train").values())
    assert len(set(sizes)) >= 4
    assert any(w % 2 or h % 2 for w, h in sizes)
    assert any(min(w, h) < 64 for w, h in sizes)
    mask = np.array(Image.open(next((voc / "SegmentationClass").iterdir())))
    assert 255 in mask and mask.max() == 255 and set(np.unique(mask)) - {255} <= set(range(21))


def test_collate_stacks_equal_sizes_and_lists_the_others():
    same = [(torch.zeros(3, 8, 9), torch.zeros(8, 9, dtype=torch.long))] * 3
    images, masks = collate_images(same)
    assert images.shape == (3, 3, 8, 9) and masks.shape == (3, 8, 9)
    mixed = [(torch.zeros(3, 8, 9), torch.zeros(8, 9)), (torch.zeros(3, 7, 5), torch.zeros(7, 5))]
    images, masks = collate_images(mixed)
    assert [tuple(i.shape) for i in images] == [(3, 8, 9), (3, 7, 5)]
    assert [tuple(m.shape) for m in masks] == [(8, 9), (7, 5)]


def test_scores_do_not_depend_on_the_batch_size(voc):
    torch.manual_seed(0)
    model = build_refinenet("course", num_classes=21).eval()
    ds = load_dataset(voc, "val", eval_transforms())
    one = evaluate(model, ds, num_classes=21, progress=False, bands=())
    four = evaluate(model, eval_loader(ds, batch_size=4), num_classes=21, progress=False, bands=())
    assert torch.equal(one.metrics.confusion, four.metrics.confusion)
    assert one.metrics.confusion.sum() > 0
    assert [s.id for s in four.per_image] == ds.ids


def test_train_batch_4_with_validation_then_evaluate_with_saved_predictions(voc, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--data", str(voc), "--epochs", "1", "--batch-size", "4", "--crop-size", "64",
                 "--precision", "fp32", "--evaluate", "multi-scale", "--out", str(run), "--quiet"])
    assert code == 0, capsys.readouterr().err
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 1 and history[0]["miou"] is not None  # validation ran on the mixed sizes
    single = json.loads((run / "evaluation-val.json").read_text())  # train --evaluate: the evaluate command
    multi = json.loads((run / "evaluation-val-multiscale.json").read_text())
    assert single["metrics"]["miou"] == pytest.approx(history[0]["miou"], abs=0.01)  # best.pt is epoch 1
    assert multi["scales"] == [0.4, 0.6, 0.8, 1.0, 1.2] and multi["flip"] and multi["num_images"] == 4

    preds = tmp_path / "predictions"
    code = main(["evaluate", str(run / "best.pt"), "--data", str(voc), "--save-predictions", str(preds),
                 "--quiet", "--out", str(tmp_path / "ev.json")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "ev.json").read_text())
    sizes = image_sizes(voc, "val")
    assert result["num_images"] == len(sizes) == 4
    assert [r["id"] for r in result["per_image"]] == list(sizes)
    for image_id, size in sizes.items():
        mask = Image.open(preds / f"{image_id}.png")
        assert mask.mode == "P" and mask.size == size
        assert Image.open(preds / "overlays" / f"{image_id}.png").size == size
        assert np.array(mask).max() < 21


def test_predict_takes_any_size_even_below_the_networks_minimum(voc, tmp_path, capsys):
    torch.manual_seed(0)
    from refinenet_edu.engine.checkpoints import save_checkpoint

    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, build_refinenet("course", num_classes=21))
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (h, w) in {"tiny": (20, 25), "odd": (41, 57), "wide": (33, 129)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    code = main(["predict", str(ckpt), str(folder), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    for name, size in {"tiny": (25, 20), "odd": (57, 41), "wide": (129, 33)}.items():
        assert Image.open(tmp_path / "out" / f"{name}.png").size == size
        assert Image.open(tmp_path / "out" / "overlays" / f"{name}.png").size == size


def test_ablate_and_the_dashboards_train_now_on_mixed_sizes(voc, tmp_path, capsys):
    from refinenet_edu.experiments.results import AblationResults, add_live_run, load_predictions
    from refinenet_edu.viz.plots import figure_png, plot_predictions
    from refinenet_edu.viz.dashboard import default_trainer

    out = tmp_path / "ablation"
    code = main(["ablate", "--data", str(voc), "--variants", "4-cascaded-crp4", "--seeds", "0", "--epochs", "1",
                 "--batch-size", "4", "--crop-size", "64", "--eval-every", "1", "--precision", "fp32", "--no-timing", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    results = AblationResults.load(out)
    masks, ids = load_predictions(results, "4-cascaded-crp4")
    sizes = image_sizes(voc, "val")
    assert ids == list(sizes)
    assert [m.shape[::-1] for m in masks] == list(sizes.values())

    # the dashboard's "train now" (its default trainer), on the first 4 training and the first val image
    live = default_trainer("single-crp4", epochs=1, data=str(voc), subset=4, crop_size=64, batch_size=4,
                           precision="fp32", progress=False)
    assert [m.shape[::-1] for m in live["predictions"]] == list(sizes.values())[:1]
    new, group = add_live_run(results, live["record"], costs=live["costs"], predictions=live["predictions"])
    assert load_predictions(new, group)[0] is live["predictions"]
    val = load_dataset(voc, "val")
    for i in range(len(val)):  # what the dashboard's predictions view draws, image by image
        image, mask = val[i]
        fig = plot_predictions(image, mask, {"4-cascaded-crp4": masks[i], group: live["predictions"][0] if i == 0
                                                 else None}, val.palette, val.class_names)
        assert figure_png(fig).startswith(b"\x89PNG")
