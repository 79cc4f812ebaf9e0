"""Metrics against hand-computed confusion matrices, trimap bands and a 2-process DDP reduce."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from refinenet_edu.engine.metrics import (
    BoundaryMetrics,
    ConfusionMatrix,
    SegmentationMetrics,
    band_scores,
    boundary_band,
    confusion_matrix,
    iou_from_confusion,
    miou_from_confusion,
)

# A 4x4 ground truth with an ignored pair of pixels, and a prediction with
# three mistakes. Class 3 occurs in neither.
TARGET = torch.tensor(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 255, 255],
        [2, 2, 2, 2],
    ]
)
PRED = torch.tensor(
    [
        [0, 1, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 0, 0],  # the two ignored pixels: wrong, but not counted
        [2, 1, 2, 2],
    ]
)
# rows = ground truth, columns = prediction, counted by hand
EXPECTED_CM = torch.tensor(
    [
        [3, 1, 0, 0],
        [0, 4, 0, 0],
        [0, 1, 5, 0],
        [0, 0, 0, 0],
    ]
)


def test_hand_computed_case():
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    assert cm.matrix.dtype == torch.int64
    assert torch.equal(cm.matrix, EXPECTED_CM)
    m = cm.compute()
    # IoU = TP / (TP + FP + FN)
    assert m.iou[0] == pytest.approx(3 / (3 + 0 + 1))
    assert m.iou[1] == pytest.approx(4 / (4 + 2 + 0))
    assert m.iou[2] == pytest.approx(5 / (5 + 0 + 1))
    assert math.isnan(m.iou[3])  # absent from both ground truth and prediction
    assert m.miou == pytest.approx((3 / 4 + 4 / 6 + 5 / 6) / 3)
    assert m.pixel_accuracy == pytest.approx(12 / 14)
    assert m.class_accuracy[:3] == pytest.approx([3 / 4, 4 / 4, 5 / 6])
    assert math.isnan(m.class_accuracy[3])
    assert m.mean_class_accuracy == pytest.approx((3 / 4 + 1 + 5 / 6) / 3)
    assert m.fw_iou == pytest.approx((4 * 3 / 4 + 4 * 4 / 6 + 6 * 5 / 6) / 14)
    assert m.num_pixels == 14


def test_class_only_in_prediction_counts_as_zero():
    target = torch.zeros(2, 2, dtype=torch.long)
    pred = torch.tensor([[0, 0], [0, 2]])
    m = ConfusionMatrix(3).update(pred, target).compute()
    assert m.iou[0] == pytest.approx(3 / 4)
    assert math.isnan(m.iou[1])
    assert m.iou[2] == 0.0  # predicted but absent from the ground truth: a false positive
    assert m.miou == pytest.approx((3 / 4 + 0) / 2)
    assert math.isnan(m.class_accuracy[2])  # recall undefined without ground truth
    assert m.fw_iou == pytest.approx(3 / 4)


def test_pure_functions_match_the_accumulator():
    cm = confusion_matrix(PRED, TARGET, 4)
    assert torch.equal(cm, EXPECTED_CM)
    assert torch.equal(confusion_matrix(PRED.numpy(), TARGET.numpy(), 4), EXPECTED_CM)
    iou = iou_from_confusion(cm)
    assert iou.dtype == torch.float64
    assert torch.allclose(iou[:3], torch.tensor([3 / 4, 4 / 6, 5 / 6], dtype=torch.float64))
    assert torch.isnan(iou[3])
    assert miou_from_confusion(cm) == pytest.approx(ConfusionMatrix(4).update(PRED, TARGET).compute().miou)
    # also accepts numpy / nested lists
    assert miou_from_confusion(EXPECTED_CM.numpy()) == pytest.approx(miou_from_confusion(EXPECTED_CM.tolist()))


def test_all_ignore_image_contributes_nothing():
    ignored = torch.full((5, 7), 255)
    cm = ConfusionMatrix(4)
    cm.update(torch.randint(0, 4, (5, 7)), ignored)
    assert cm.matrix.sum() == 0
    empty = cm.compute()  # no crash, no warning-raising NaN arithmetic
    assert math.isnan(empty.miou) and math.isnan(empty.pixel_accuracy) and math.isnan(empty.fw_iou)
    assert empty.as_dict()["miou"] is None
    cm.update(PRED, TARGET)
    assert torch.equal(cm.matrix, EXPECTED_CM)
    assert cm.compute().miou == pytest.approx(SegmentationMetrics.from_confusion(EXPECTED_CM).miou)
    # the pure functions agree
    assert confusion_matrix(torch.zeros(3, 3, dtype=torch.long), torch.full((3, 3), 255), 2).sum() == 0
    assert math.isnan(miou_from_confusion(torch.zeros(2, 2, dtype=torch.long)))


def test_accumulation_over_batches_of_different_sizes_equals_one_shot():
    g = torch.Generator().manual_seed(0)
    c = 5
    images = [
        (torch.randint(0, c, (n, h, w), generator=g), torch.randint(0, c, (n, h, w), generator=g))
        for n, h, w in [(1, 9, 11), (3, 9, 11), (2, 16, 5), (4, 3, 3)]
    ]
    for _, t in images:  # sprinkle some ignore pixels
        t[torch.rand(t.shape, generator=g) < 0.2] = 255
    acc = ConfusionMatrix(c)
    for p, t in images:
        acc.update(p, t)
    one_shot = confusion_matrix(
        torch.cat([p.flatten() for p, _ in images]), torch.cat([t.flatten() for _, t in images]), c
    )
    assert torch.equal(acc.matrix, one_shot)
    assert acc.compute().miou == pytest.approx(miou_from_confusion(one_shot))
    # per-image matrices add up to the batch matrix
    p, t = images[1]
    assert torch.equal(sum(confusion_matrix(p[i], t[i], c) for i in range(3)), confusion_matrix(p, t, c))


def test_labels_out_of_range_and_shape_mismatch_raise():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"target.*7"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, 7], [1, 2]]))
    with pytest.raises(ValueError, match=r"target.*-1"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, -1], [1, 2]]))
    with pytest.raises(ValueError, match=r"pred.*3"):
        cm.update(torch.tensor([[0, 3], [1, 2]]), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="same shape"):
        cm.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        cm.update(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))
    # a wrong prediction on an ignored pixel is not an error
    cm.update(torch.tensor([[9]]), torch.tensor([[255]]))
    assert cm.matrix.sum() == 0


def test_as_dict_is_json_friendly():
    m = ConfusionMatrix(4).update(PRED, TARGET).compute()
    d = m.as_dict(["bg", "a", "b", "c"])
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["iou"]["c"] is None
    assert back["iou"]["a"] == pytest.approx(4 / 6)
    assert back["confusion"] == EXPECTED_CM.tolist()
    plain = m.as_dict()
    assert isinstance(plain["iou"], list) and plain["iou"][3] is None
    with pytest.raises(ValueError):
        m.as_dict(["too", "few"])


def test_reduce_without_process_group_is_a_no_op():
    cm = ConfusionMatrix(4).update(PRED, TARGET)
    assert torch.equal(cm.reduce().matrix, EXPECTED_CM)


# --------------------------------------------------------------------------
# boundary (trimap) bands
# --------------------------------------------------------------------------

# A 2x2 object in the middle of a 6x6 background, and one ignored pixel in
# the top-right corner.
BAND_MAP = torch.tensor(
    [
        [0, 0, 0, 0, 0, 255],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
)
# k = 1: every pixel with a differently-labelled pixel in its 3x3 square
BAND_1 = torch.tensor(
    [
        [0, 0, 0, 0, 1, 0],  # (0,4) touches the ignored pixel; the ignored pixel is excluded
        [0, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 0],
    ],
    dtype=torch.bool,
)


def test_boundary_band_on_a_hand_drawn_map():
    assert torch.equal(boundary_band(BAND_MAP, 1), BAND_1)
    band2 = boundary_band(BAND_MAP, 2)
    expected2 = torch.ones(6, 6, dtype=torch.bool)
    expected2[0, 5] = False  # every pixel is within 2 of the object; the ignored one never counts
    assert torch.equal(band2, expected2)
    assert not boundary_band(BAND_MAP, 0).any()
    # a uniform map has no boundary; the image border is not one
    assert not boundary_band(torch.zeros(5, 5, dtype=torch.long), 3).any()
    # batched input gives the same per-image answer
    batch = torch.stack([BAND_MAP, torch.zeros(6, 6, dtype=torch.long)])
    b = boundary_band(batch, 1)
    assert b.shape == (2, 6, 6) and torch.equal(b[0], BAND_1) and not b[1].any()
    # bands are nested
    wide = torch.randint(0, 3, (20, 20))
    for k in (1, 2, 4):
        assert not (boundary_band(wide, k) & ~boundary_band(wide, 2 * k)).any()


def test_boundary_metrics_count_only_pixels_in_the_band():
    target = BAND_MAP.clone()
    pred = target.clone()
    pred[0, 5] = 0
    pred[5, 0] = 1  # a mistake far (> 1 px) from any boundary
    bm = BoundaryMetrics(2, bands=(1, 2))
    bm.update(pred[None], target[None])
    res = bm.compute(["bg", "obj"])
    assert res[1].num_pixels == int(BAND_1.sum())
    assert res[1].pixel_accuracy == 1.0 and res[1].miou == 1.0
    assert res[2].num_pixels == 35
    assert res[2].pixel_accuracy == pytest.approx(34 / 35)
    d = band_scores(bm.compute())
    json.dumps(d, allow_nan=False)
    assert set(d) == {"1", "2"} and d["1"]["miou"] == 1.0
    bm.update(pred, target)  # unbatched masks work too
    assert bm.compute()[1].num_pixels == 2 * int(BAND_1.sum())
    with pytest.raises(ValueError, match="same shape"):
        bm.update(pred, target[:3])


# --------------------------------------------------------------------------
# DDP: 2 CPU processes, gloo
# --------------------------------------------------------------------------


def _rank_data(rank: int):
    g = torch.Generator().manual_seed(100 + rank)
    n = 2 + rank  # different amounts of data per rank
    pred = torch.randint(0, 4, (n, 12, 12), generator=g)
    target = torch.randint(0, 4, (n, 12, 12), generator=g)
    target[:, :3] = 255
    return pred, target


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        pred, target = _rank_data(rank)
        cm = ConfusionMatrix(4).update(pred, target).reduce()
        bm = BoundaryMetrics(4, bands=(1, 3)).update(pred, target).reduce()
        torch.save(
            {"cm": cm.matrix, "bands": {k: m.matrix for k, m in bm.matrices.items()}},
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ddp_reduce_sums_over_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    expected = ConfusionMatrix(4)
    expected_bands = BoundaryMetrics(4, bands=(1, 3))
    for rank in range(2):
        expected.update(*_rank_data(rank))
        expected_bands.update(*_rank_data(rank))
    assert expected.matrix.sum() > 0
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(got["cm"], expected.matrix)
        for k in (1, 3):
            assert torch.equal(got["bands"][k], expected_bands.matrices[k].matrix)


def test_numpy_inputs_work():
    p = np.array([[0, 1], [1, 1]])
    t = np.array([[0, 1], [255, 0]])
    assert ConfusionMatrix(2).update(p, t).matrix.tolist() == [[1, 1], [0, 1]]
