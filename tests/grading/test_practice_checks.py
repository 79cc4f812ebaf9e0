"""The checks of the second half's write-your-own exercises (issue 30) pass a student's correct code and name
each classic mistake: the joint augmentation (06), the training step (07), the trimap band (08) and the
Light-Weight block built from the library's parts (10). Each is checked at two sizes, so that sizes written
into the code fail too.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn

from refinenet_edu import grading as checks
from refinenet_edu.engine.metrics import boundary_band
from refinenet_edu.grading import CheckFailed
from refinenet_edu.grading.boundary import _masks, band_variant
from refinenet_edu.grading.harness import WIDTH
from refinenet_edu.nn.components import AdaptiveConv, ChainedResidualPooling, MultiResolutionFusion, RefineNetBlock


def _fails(check, impl, *patterns: str) -> str:
    with pytest.raises(CheckFailed) as info:
        check(impl)
    message = str(info.value)
    flat = " ".join(message.split())
    for pattern in patterns:
        assert pattern.lower() in flat.lower(), f"{pattern!r} not in:\n{message}"
    lines = message.splitlines()
    assert any(line.startswith("Fix: ") for line in lines[1:]), message
    assert all(len(line) <= WIDTH for line in lines), message
    return message


# ---------------------------------------------------------------- 06: the joint augmentation


def augment(image, mask, scale, crop, top, left, flip, *, mask_mode="nearest", fill=255, resize_mask=True,
            flip_mask=True, flip_dim=-1, size_of=round, crop_size=None):
    crop = crop_size or crop
    h, w = image.shape[-2:]
    size = (size_of(h * scale), size_of(w * scale))
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    if resize_mask:
        m = F.interpolate(mask[None, None].float(), size=size, mode=mask_mode)[0, 0]
        mask = m.long()
    pad_h, pad_w = max(0, crop - image.shape[-2]), max(0, crop - image.shape[-1])
    image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
    mask = F.pad(mask, (0, max(0, crop - mask.shape[-1]), 0, max(0, crop - mask.shape[-2])), value=fill)
    image, mask = image[:, top:top + crop, left:left + crop], mask[top:top + crop, left:left + crop]
    if flip:
        image = image.flip(flip_dim)
        mask = mask.flip(flip_dim) if flip_mask else mask
    return image, mask


def torchvision_augment(image, mask, scale, crop, top, left, flip):
    # torchvision's functional API: the image resized with antialiasing, the mask with nearest neighbour
    size = [round(image.shape[-2] * scale), round(image.shape[-1] * scale)]
    image = TF.resize(image, size)
    mask = TF.resize(mask[None], size, interpolation=TF.InterpolationMode.NEAREST)[0]
    pad = [0, 0, max(0, crop - size[1]), max(0, crop - size[0])]
    image, mask = TF.pad(image, pad, fill=0), TF.pad(mask[None], pad, fill=255)[0]
    image, mask = image[:, top:top + crop, left:left + crop], mask[top:top + crop, left:left + crop]
    return (TF.horizontal_flip(image), TF.horizontal_flip(mask)) if flip else (image, mask)


def _variant(**kw):
    def fn(image, mask, scale, crop, top, left, flip):
        return augment(image, mask, scale, crop, top, left, flip, **kw)
    return fn


def test_joint_augment_passes_correct_code(capsys):
    checks.check_joint_augment(_variant())
    checks.check_joint_augment(torchvision_augment)
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize("kwargs, patterns", [
    (dict(resize_mask=False), ["the mask was not", "resize the mask"]),
    (dict(mask_mode="bilinear"), ["labels [1, 2]", "mode='nearest'"]),
    (dict(fill=0), ["padding is 0", "value=255"]),
    (dict(flip_mask=False), ["only the image was flipped", "mask.flip(-1)"]),
    (dict(flip_dim=-2), ["upside down", "flip(-1)"]),
    (dict(size_of=int), ["rounded down", "round(h * scale)"]),
    (dict(crop_size=16), ["[3, crop, crop]"]),  # the first case's crop written into the code
])
def test_joint_augment_names_the_classic_mistakes(kwargs, patterns):
    _fails(checks.check_joint_augment, _variant(**kwargs), *patterns)


def test_joint_augment_names_a_float_mask_and_one_flip_for_each():
    _fails(checks.check_joint_augment, lambda *a: (augment(*a)[0], augment(*a)[1].float()), "stay int64")

    def two_coins(image, mask, scale, crop, top, left, flip):  # the mask flipped, the image not
        img, m = augment(image, mask, scale, crop, top, left, False)
        return img, (m.flip(-1) if flip else m)
    _fails(checks.check_joint_augment, two_coins, "only the mask was flipped")


# ---------------------------------------------------------------- 07: the training step


def train_step(model, images, masks, optimizer, scheduler, *, order=("zero", "backward", "step", "schedule"),
               ignore=True):
    loss = F.cross_entropy(model(images), masks, **({"ignore_index": 255} if ignore else {}))
    for action in order:
        if action == "zero":
            optimizer.zero_grad()
        elif action == "backward":
            loss.backward()
        elif action == "step":
            optimizer.step()
        elif action == "schedule":
            scheduler.step()
    return loss.item()


def _step(**kw):
    def fn(model, images, masks, optimizer, scheduler):
        return train_step(model, images, masks, optimizer, scheduler, **kw)
    return fn


def test_train_step_passes_correct_code(capsys):
    checks.check_train_step(_step())
    assert capsys.readouterr().out.count("✓") == 1


@pytest.mark.parametrize("kwargs, patterns", [
    (dict(order=("backward", "step", "schedule")), ["pile up", "optimizer.zero_grad()"]),
    (dict(order=("backward", "zero", "step", "schedule")), ["wipes the gradients", "zero_grad, backward, step"]),
    (dict(order=("zero", "backward", "step")), ["did not move", "once per batch"]),
    (dict(order=("zero", "backward", "schedule", "step")), ["before `optimizer.step()`"]),
    (dict(order=("zero", "backward", "step", "schedule", "schedule")), ["learning rates", "exactly once"]),
    (dict(ignore=False), ["does not ignore the label 255", "ignore_index=255"]),
])
def test_train_step_names_the_classic_mistakes(kwargs, patterns):
    _fails(checks.check_train_step, _step(**kwargs), *patterns)


def test_train_step_names_a_step_without_gradients_and_a_missing_loss():
    def no_grad(model, images, masks, optimizer, scheduler):
        with torch.no_grad():
            return train_step(model, images, masks, optimizer, scheduler)

    _fails(checks.check_train_step, no_grad, "without gradients")
    _fails(checks.check_train_step, lambda *a: (train_step(*a), None)[1], "expected the loss", "loss.item()")


# ---------------------------------------------------------------- 08: the trimap band


def band(mask, k, *, window=None, pad=None, one_side=False, keep_ignored=False):
    size, padding = (window(k), window(k) // 2) if window else (2 * k + 1, k)
    x = mask[None, None].float()
    if pad is not None:
        x, padding = F.pad(x, (k, k, k, k), value=float(pad)), 0
    high = F.max_pool2d(x, size, stride=1, padding=padding)[0, 0]
    low = -F.max_pool2d(-x, size, stride=1, padding=padding)[0, 0]
    out = high != mask if one_side else high != low
    return out if keep_ignored else out & (mask != 255)


def _band(**kw):
    return lambda mask, k: band(mask, k, **kw)


def test_the_band_variants_start_from_the_librarys_band():
    for mask in _masks(torch.Generator().manual_seed(0)):
        for k in (1, 2, 3):
            assert torch.equal(band_variant(mask, k), boundary_band(mask, k))


def test_boundary_band_passes_correct_code(capsys):
    checks.check_boundary_band(_band())
    checks.check_boundary_band(lambda mask, k: _band()(mask, k).int())  # 0/1 integers are a band too
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize("kwargs, patterns", [
    (dict(one_side=True), ["one side", "max_pool(mask) != -max_pool(-mask)"]),
    (dict(window=lambda k: k), ["window's side", "2 * k + 1"]),
    (dict(window=lambda k: 2 * k - 1), ["too narrow"]),
    (dict(window=lambda k: 2 * k + 3), ["too wide"]),
    (dict(pad=0), ["padded with 0"]),
    (dict(pad=-1), ["image border", "-inf"]),
    (dict(keep_ignored=True), ["ignored pixels", "mask != 255"]),
])
def test_boundary_band_names_the_classic_mistakes(kwargs, patterns):
    _fails(checks.check_boundary_band, _band(**kwargs), *patterns)


def test_boundary_band_names_a_diamond_and_a_wrong_shape():
    def diamond(mask, k):
        return band_variant(mask, k, shape="diamond")

    _fails(checks.check_boundary_band, diamond, "diamond", "2 * k + 1")
    _fails(checks.check_boundary_band, lambda mask, k: _band()(mask, k)[None, None], "mask's shape")


# ---------------------------------------------------------------- 10: the Light-Weight block


def lw(in_channels, width, **kw):
    kwargs = dict(adaptive_rcus=0, output_rcus=0, kernel_size=1, align_corners=True) | kw
    return RefineNetBlock(in_channels, [width] * len(in_channels), **kwargs)


class PartsBlock(nn.Module):
    """The block written from the parts themselves."""

    def __init__(self, in_channels, width):
        super().__init__()
        self.adapt = nn.ModuleList(AdaptiveConv(c, width, num_rcus=0, kernel_size=1) for c in in_channels)
        self.fusion = MultiResolutionFusion([width] * len(in_channels), kernel_size=1, align_corners=True)
        self.crp = ChainedResidualPooling(width, 4, kernel_size=1)

    def forward(self, *paths):
        return self.crp(self.fusion(*[a(p) for a, p in zip(self.adapt, paths)]))


def test_lw_block_passes_the_librarys_parts(capsys):
    checks.check_lw_block(lw)
    checks.check_lw_block(PartsBlock)
    out = capsys.readouterr().out
    assert out.count("✓") == 2 and "318 parameters against 7,440" in out


@pytest.mark.parametrize("kwargs, patterns", [
    (dict(kernel_size=3), ["are 3x3", "kernel_size=1"]),
    (dict(adaptive_rcus=2), ["Residual Conv Unit", "adaptive_rcus=0"]),
    (dict(output_rcus=1), ["Residual Conv Unit", "output_rcus=0"]),
    (dict(align_corners=False), ["align_corners=False", "align_corners=True"]),
    (dict(crp_blocks=2), ["2 pool+conv blocks", "crp_blocks=4"]),
])
def test_lw_block_names_the_classic_mistakes(kwargs, patterns):
    _fails(checks.check_lw_block, lambda c, w: lw(c, w, **kwargs), *patterns)


def test_lw_block_sizes_written_into_the_code_fail():
    _fails(checks.check_lw_block, lambda c, w: lw(c, 4), "give [4] channels", "`width`")
    _fails(checks.check_lw_block, lambda c, w: RefineNetBlock(c, [None, w], adaptive_rcus=0, output_rcus=0,
                                                               kernel_size=1, align_corners=True),
           "one 1x1 adaptation conv per path")


# ---------------------------------------------------------------- all four


def test_the_new_checks_are_quick_and_leave_the_random_state_alone(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    start = time.perf_counter()
    checks.check_joint_augment(_variant())
    checks.check_train_step(_step())
    checks.check_boundary_band(_band())
    checks.check_lw_block(lw)
    assert time.perf_counter() - start < 10  # about a second each on a loaded 2-core CPU
    assert torch.equal(torch.rand(3), expected)
    assert capsys.readouterr().out.count("✓") == 4


@pytest.mark.parametrize("check", [checks.check_joint_augment, checks.check_train_step, checks.check_boundary_band,
                                   checks.check_lw_block])
def test_not_implemented_passes_through(check):
    def todo(*args):
        raise NotImplementedError("exercise")

    with pytest.raises(NotImplementedError):
        check(todo)
