"""Evaluation with tiny stand-in models: multi-scale/flip probabilities, sliding
windows, per-image scores, and palette PNGs that read back exactly."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from refinenet_edu.datasets.palette import IGNORE_COLOUR, colorize, write_mask_png
from refinenet_edu.engine.evaluation import OFFICIAL_SCALES, evaluate, save_predictions
from refinenet_edu.engine.inference import predict_probabilities
from refinenet_edu.engine.metrics import confusion_matrix, miou_from_confusion


class RecordingConv(nn.Module):
    """A 1x1 convolution (no spatial context) that records its input sizes and mode."""

    def __init__(self, classes: int = 4, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, classes, 1)
        self.sizes: list[tuple[int, int]] = []
        self.modes: list[bool] = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        self.modes.append(self.training)
        return self.conv(x)


class SymmetricConv(nn.Module):
    """3x3 conv whose kernels are mirror-symmetric left-right: flip-equivariant."""

    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, classes, 3, padding=1)
        with torch.no_grad():
            w = self.conv.weight
            w.copy_((w + w.flip(-1)) / 2)

    def forward(self, x):
        return self.conv(x)


class OneHotFromChannel(nn.Module):
    """Predicts the class written in channel 0 of the image (an oracle stand-in)."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes
        self.dummy = nn.Parameter(torch.zeros(()))  # so the model has a device

    def forward(self, x):
        labels = x[:, 0].round().long().clamp(0, self.classes - 1)
        return 10.0 * F.one_hot(labels, self.classes).permute(0, 3, 1, 2).float() + 0 * self.dummy


def test_multi_scale_and_flip_probabilities_sum_to_one():
    model = RecordingConv(4).eval()
    x = torch.randn(2, 3, 37, 53)  # odd sizes; 0.4 * 37 < 32 gets clamped
    with torch.inference_mode():
        p = predict_probabilities(model, x, scales=OFFICIAL_SCALES, flip=True)
    assert p.shape == (2, 4, 37, 53) and p.dtype == torch.float32
    assert torch.allclose(p.sum(1), torch.ones(2, 37, 53), atol=1e-5)
    assert (p >= 0).all()
    assert len(model.sizes) == 2 * len(OFFICIAL_SCALES)
    assert min(min(s) for s in model.sizes) >= 32
    assert (round(53 * 1.2), round(37 * 1.2)) == tuple(reversed(model.sizes[-1]))
    assert OFFICIAL_SCALES == (0.4, 0.6, 0.8, 1.0, 1.2)


def test_single_scale_is_the_softmax_of_the_model():
    model = RecordingConv(4).eval()
    x = torch.randn(1, 3, 40, 48)
    with torch.inference_mode():
        assert torch.allclose(predict_probabilities(model, x), model(x).softmax(1), atol=1e-6)
    tiny = torch.randn(1, 3, 20, 10)  # smaller than the model minimum: upscaled, answered at 20x10
    with torch.inference_mode():
        out = predict_probabilities(model, tiny)
    assert out.shape == (1, 4, 20, 10) and model.sizes[-1] == (32, 32)


def test_flip_invariance():
    x = torch.randn(1, 3, 33, 47)
    sym = SymmetricConv().eval()
    with torch.inference_mode():
        plain = predict_probabilities(sym, x, scales=(1.0, 0.8))
        flipped = predict_probabilities(sym, x, scales=(1.0, 0.8), flip=True)
    assert torch.allclose(plain, flipped, atol=1e-5)  # flip-equivariant model: flipping changes nothing
    # for any model, flip-averaged predictions are themselves flip-equivariant
    any3x3 = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 5, padding=2)).eval()
    with torch.inference_mode():
        a = predict_probabilities(any3x3, x.flip(-1), flip=True)
        b = predict_probabilities(any3x3, x, flip=True).flip(-1)
        c = predict_probabilities(any3x3, x.flip(-1))
        d = predict_probabilities(any3x3, x).flip(-1)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(c, d, atol=1e-3)  # the check above is not vacuous


def test_sliding_window_equals_full_image_for_a_1x1_model():
    model = RecordingConv(5).eval()
    x = torch.randn(2, 3, 70, 91)
    with torch.inference_mode():
        full = predict_probabilities(model, x, scales=(1.0, 0.5, 1.3), flip=True)
        model.sizes.clear()
        tiled = predict_probabilities(model, x, scales=(1.0, 0.5, 1.3), flip=True, window=40, stride=(17, 30))
    assert torch.allclose(full, tiled, atol=1e-5)
    # tiles were used and none was larger than the window
    assert all(h <= 40 and w <= 40 for h, w in model.sizes)
    assert len(model.sizes) > 2 * 3
    # a window larger than the image runs it whole
    model.sizes.clear()
    with torch.inference_mode():
        predict_probabilities(model, x, window=(128, 256))
    assert model.sizes == [(70, 91)]
    with pytest.raises(ValueError, match="gaps"):
        predict_probabilities(model, x, window=32, stride=40)


class ToyDataset(torch.utils.data.Dataset):
    """Images whose channel 0 holds the prediction of :class:`OneHotFromChannel`."""

    class_names = ["background", "cat", "dog"]
    palette = [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    num_classes = 3
    ignore_index = 255

    def __init__(self):
        h = w = 32
        half = torch.zeros(h, w, dtype=torch.long)
        half[:, w // 2 :] = 1
        all_dog = torch.full((h, w), 2)
        dog_pred = all_dog.clone()
        dog_pred[:8] = 1
        cases = {
            "perfect": (half, half),  # mIoU 1
            "all-background": (half, torch.zeros(h, w, dtype=torch.long)),  # (1/2 + 0) / 2
            "ignored": (torch.full((h, w), 255), half),  # no scored pixel: NaN, skipped
            "dog": (all_dog, dog_pred),  # (3/4 + 0) / 2
        }
        self.ids = list(cases)
        self.items = []
        for mask, pred in cases.values():
            image = torch.randn(3, h, w)
            image[0] = pred.float()
            self.items.append((image, mask))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_evaluate_per_image_scores_and_ranking():
    ds = ToyDataset()
    model = OneHotFromChannel(3)
    model.train()
    res = evaluate(model, ds, num_classes=3, progress=False, bands=(1, 4))
    assert model.training  # restored afterwards
    by_id = {s.id: s for s in res.per_image}
    assert list(by_id) == ds.ids
    assert by_id["perfect"].miou == 1.0 and by_id["perfect"].pixel_accuracy == 1.0
    assert by_id["all-background"].miou == pytest.approx(0.25)
    assert by_id["all-background"].pixel_accuracy == pytest.approx(0.5)
    assert math.isnan(by_id["ignored"].miou) and by_id["ignored"].num_pixels == 0
    assert by_id["dog"].miou == pytest.approx(0.375)
    assert by_id["dog"].pixel_accuracy == pytest.approx(0.75)
    assert [s.id for s in res.best(2)] == ["perfect", "dog"]
    assert [s.id for s in res.worst(10)] == ["all-background", "dog", "perfect"]
    # overall metrics are those of all pixels together
    preds = torch.stack([img[0].long() for img, _ in ds.items])
    masks = torch.stack([m for _, m in ds.items])
    cm = confusion_matrix(preds, masks, 3)
    assert torch.equal(res.metrics.confusion, cm)
    assert res.miou == pytest.approx(miou_from_confusion(cm))
    assert set(res.boundary) == {1, 4}
    assert res.boundary[1].num_pixels < res.boundary[4].num_pixels < res.metrics.num_pixels
    assert res.num_images == 4 and res.seconds > 0
    d = json.loads(json.dumps(res.as_dict(), allow_nan=False))
    assert d["metrics"]["iou"]["cat"] == pytest.approx(res.metrics.iou[1])
    assert d["per_image"][2] == {"id": "ignored", "miou": None, "pixel_accuracy": None, "num_pixels": 0}
    assert set(d["boundary"]) == {"1", "4"}
    table = res.table()
    for word in ["background", "cat", "dog", "mIoU", "pixel accuracy", "mean class accuracy",
                 "frequency-weighted IoU", "within 4 px"]:
        assert word in table
    # a DataLoader with batches of 2 gives the same numbers and ids
    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False)
    res2 = evaluate(model, loader, num_classes=3, progress=False, bands=(1, 4), keep_per_image=True)
    assert torch.equal(res2.metrics.confusion, cm)
    assert [s.id for s in res2.per_image] == ds.ids
    assert [s.as_dict() for s in res2.per_image] == [s.as_dict() for s in res.per_image]
    assert res2.boundary[4].num_pixels == res.boundary[4].num_pixels
    # a Subset keeps the right ids
    sub = torch.utils.data.Subset(ds, [3, 0])
    assert [s.id for s in evaluate(model, sub, num_classes=3, progress=False).per_image] == ["dog", "perfect"]


def test_evaluate_runs_the_model_in_eval_mode_with_multi_scale_flip():
    ds = ToyDataset()
    model = RecordingConv(3).train()
    res = evaluate(model, ds, num_classes=3, scales=(0.5, 1.0), flip=True, window=48, progress=False, bands=())
    assert model.modes and not any(model.modes)  # dropout/batch norm off during evaluation
    assert model.training
    assert res.boundary == {} and res.num_images == 4
    assert res.scales == (0.5, 1.0) and res.flip
    assert res.as_dict()["window"] == [48, 48]
    with pytest.raises(ValueError, match="classes"):
        evaluate(model, ds, num_classes=5, progress=False)
    with pytest.raises(ValueError, match="predicts 3 classes"):
        ds2 = ToyDataset()
        ds2.num_classes = 4
        ds2.class_names = ["a", "b", "c", "d"]
        evaluate(model, ds2, num_classes=4, progress=False)
    assert model.training  # restored even after an error


def test_save_predictions_writes_palette_pngs_that_read_back(tmp_path):
    g = torch.Generator().manual_seed(0)
    palette = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)]
    masks = [torch.randint(0, 5, (33, 47), generator=g), np.random.default_rng(0).integers(0, 5, (20, 31))]
    masks[0][0, 0] = 255
    images = [torch.randint(0, 256, (3, 33, 47), dtype=torch.uint8), np.zeros((20, 31, 3), np.uint8)]
    written = save_predictions(masks, ["a", "sub/b"], tmp_path, palette, images=images)
    assert len(written) == 4
    for mask, name in zip(masks, ["a", "sub/b"]):
        with Image.open(tmp_path / f"{name}.png") as im:
            assert im.mode == "P"
            assert np.array_equal(np.array(im), np.asarray(mask))
            pal = im.getpalette()
            assert [tuple(pal[3 * i : 3 * i + 3]) for i in range(5)] == palette
            assert tuple(pal[3 * 255 : 3 * 256]) == IGNORE_COLOUR
        same = io.BytesIO()  # the one palette-PNG writer of the package, byte for byte
        write_mask_png(np.asarray(mask), same, palette)
        assert (tmp_path / f"{name}.png").read_bytes() == same.getvalue()
        with Image.open(tmp_path / "overlays" / f"{name}.png") as ov:
            assert ov.mode == "RGB" and ov.size == (mask.shape[1], mask.shape[0])
    with Image.open(tmp_path / "overlays" / "a.png") as ov:
        over = np.array(ov)
    img = images[0].permute(1, 2, 0).numpy()
    assert np.array_equal(over[0, 0], img[0, 0])  # ignored pixel: image unchanged
    m = np.asarray(masks[0])
    y, x = np.argwhere(m == 1)[0]
    expected = (0.5 * img[y, x].astype(float) + 0.5 * np.array(palette[1])).astype(np.uint8)
    assert np.abs(over[y, x].astype(int) - expected.astype(int)).max() <= 1
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files
    with pytest.raises(ValueError, match="outside"):
        save_predictions([masks[1]], ["../escape"], tmp_path / "x", palette)
    with pytest.raises(ValueError, match="ids"):
        save_predictions(masks, ["only-one"], tmp_path, palette)


def test_colorize():
    palette = [(1, 2, 3), (4, 5, 6)]
    rgb = colorize(torch.tensor([[0, 1], [255, 0]]), palette)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 1].tolist() == [4, 5, 6] and rgb[1, 0].tolist() == [224, 224, 192]
