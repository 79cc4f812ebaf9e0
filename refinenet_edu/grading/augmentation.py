"""Check of a joint image/mask augmentation (notebook 06): scale, crop padded with the ignore label, flip.

:func:`joint_augment` is the reference; its keyword arguments write out the classic mistakes
(:data:`AUGMENT_VARIANTS`) that :func:`check_joint_augment` names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from refinenet_edu.grading.harness import Submission, close, fail, ok

__all__ = ["AUGMENT_VARIANTS", "check_joint_augment", "joint_augment"]

IGNORE = 255
_LABELS = (0, 3, 7)  # far apart, so that an interpolated mask shows values between them


def joint_augment(image: torch.Tensor, mask: torch.Tensor, scale: float, crop: int, top: int, left: int,
                  flip: bool, *, mask_mode: str = "nearest", mask_fill: int = IGNORE, antialias: bool = False,
                  resize_mask: bool = True, flip_image: bool = True, flip_mask: bool = True, flip_dim: int = -1,
                  size_of: Callable[[float], int] = round, swap_offsets: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference (keyword arguments left at their defaults), and the variants students write instead.

    ``image`` float ``[3, H, W]``, ``mask`` int64 ``[H, W]``. Resize both to ``(round(H * scale), round(W * scale))``
    (image bilinear, mask nearest), pad the bottom and right to at least ``crop`` x ``crop`` (image with 0, mask with
    255), take rows ``top:top + crop`` and columns ``left:left + crop``, and flip both left-right when ``flip``.
    """
    h, w = image.shape[-2:]
    size = (int(size_of(h * scale)), int(size_of(w * scale)))
    img = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=antialias)[0]
    m = mask
    if resize_mask:
        corners = dict(align_corners=False) if mask_mode == "bilinear" else {}
        m = F.interpolate(mask[None, None].float(), size=size, mode=mask_mode, **corners)[0, 0].round().long()
    pad_h, pad_w = max(0, crop - img.shape[-2]), max(0, crop - img.shape[-1])
    img = F.pad(img, (0, pad_w, 0, pad_h), value=0.0)
    mh, mw = max(0, crop - m.shape[-2]), max(0, crop - m.shape[-1])
    m = F.pad(m, (0, mw, 0, mh), value=mask_fill)
    if swap_offsets:
        top, left = left, top
    img = img[:, top:top + crop, left:left + crop]
    m = m[top:top + crop, left:left + crop]
    if flip:
        img = img.flip(flip_dim) if flip_image else img
        m = m.flip(flip_dim) if flip_mask else m
    return img, m


_NEAREST = "`F.interpolate(mask[None, None].float(), size=size, mode='nearest')[0, 0].long()`"

#: (name, keyword arguments of joint_augment, mistake, fix)
AUGMENT_VARIANTS: list[tuple[str, dict, str, str]] = [
    ("mask_not_resized", dict(resize_mask=False),
     "the image was rescaled and the mask was not: each mask pixel now labels another image pixel.",
     f"resize the mask to the same size as the image: {_NEAREST}."),
    ("mask_bilinear", dict(mask_mode="bilinear"),
     "the mask was resized with bilinear interpolation: between two classes it invents the labels in "
     "between.", f"resize the mask with nearest neighbour: {_NEAREST}."),
    ("mask_padded_with_0", dict(mask_fill=0),
     "the mask's padding is 0, the label of a real class (background); padding must be the ignore label 255.",
     "`F.pad(mask, (0, pad_w, 0, pad_h), value=255)`: the loss then skips the padded pixels."),
    ("flip_image_only", dict(flip_mask=False),
     "only the image was flipped; its mask was not.", "flip both with the same `flip`: `image.flip(-1)` and "
     "`mask.flip(-1)`."),
    ("flip_mask_only", dict(flip_image=False),
     "only the mask was flipped; the image was not.", "flip both with the same `flip`: `image.flip(-1)` and "
     "`mask.flip(-1)`."),
    ("flip_vertical", dict(flip_dim=-2),
     "the flip is upside down (rows reversed); a horizontal flip reverses the columns.",
     "`image.flip(-1)`, `mask.flip(-1)`: the last dimension is the width."),
    ("int_size", dict(size_of=int),
     "the new size is rounded down (`int(h * scale)`): 15 * 1.25 = 18.75 becomes 18 rows instead of 19.",
     "`size = (round(h * scale), round(w * scale))`."),
    ("offsets_swapped", dict(swap_offsets=True),
     "`top` and `left` are swapped: `top` counts rows (the height), `left` columns (the width).",
     "`image[:, top:top + crop, left:left + crop]`, `mask[top:top + crop, left:left + crop]`."),
]

#: (image size, scale, crop, top, left, flip): above and below 1, with and without padding, at two sizes.
CASES = [
    ((20, 30), 1.5, 16, 5, 7, True),
    ((20, 30), 0.6, 16, 0, 1, False),
    ((15, 25), 0.6, 12, 0, 2, True),
    ((15, 25), 1.25, 12, 4, 9, False),
]


def _inputs(size: tuple[int, int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = size
    image = torch.randn(3, h, w, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    mask = torch.full((h, w), _LABELS[0], dtype=torch.int64)
    mask[(yy - h // 3) ** 2 + (xx - w // 4) ** 2 < (h // 3) ** 2] = _LABELS[1]  # a disc
    mask[:, (2 * w) // 3:] = _LABELS[2]  # a band on the right: not symmetric, so a flip shows
    mask[0, 0] = IGNORE  # an ignored pixel stays ignored
    return image, mask


_same = functools.partial(close, atol=1e-4, rtol=1e-4)


def check_joint_augment(fn: Callable, *, seed: int = 0) -> None:
    """Check ``fn(image, mask, scale, crop, top, left, flip) -> (image, mask)`` against :func:`joint_augment` (the
    image may also be resized antialiased), at two image sizes and crops, so that sizes written into the code fail;
    the mask must stay int64.
    """
    __tracebackhide__ = True
    student = Submission(fn, "check_joint_augment(joint_augment)", (joint_augment,))
    what = student.what
    gen = torch.Generator().manual_seed(seed)
    padded = 0
    for size, scale, crop, top, left, flip in CASES:
        image, mask = _inputs(size, gen)
        case = (f"an image {list(image.shape)} and its mask {list(mask.shape)}, scale={scale}, crop={crop}, "
                f"top={top}, left={left}, flip={flip}")
        out = student.call(fn, image, mask, scale, crop, top, left, flip, context=f" ({case})",
                           in_place=("the input image or mask was changed in place.",
                                     "build new tensors (F.interpolate, F.pad, slicing and flip return new ones)."))
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
            raise fail(what, f"returned a {type(out).__name__}; expected two tensors, the image and its mask.",
                       "`return image, mask`.")
        got_img, got_mask = out
        if got_mask.is_floating_point() or got_mask.dtype == torch.bool:
            raise fail(what, f"the mask comes back as {got_mask.dtype}; it holds class ids and must stay int64.",
                       "after resizing a float copy, convert back: `.long()`.", case=case)
        expected_img, expected_mask = joint_augment(image, mask, scale, crop, top, left, flip)
        if got_img.shape[-2:] != got_mask.shape[-2:]:
            unscaled = joint_augment(image, mask, scale, crop, top, left, flip, resize_mask=False)[1]
            if torch.equal(got_mask, unscaled):
                raise fail(what, AUGMENT_VARIANTS[0][2], AUGMENT_VARIANTS[0][3], case=case)
            raise fail(what, f"the image comes back {list(got_img.shape)} and the mask {list(got_mask.shape)}: "
                       "one of them was resized or cropped and the other not.",
                       "apply every geometric step (resize, pad, crop, flip) to both.", case=case)
        images_ok = _same(got_img, expected_img) or _same(
            got_img, joint_augment(image, mask, scale, crop, top, left, flip, antialias=True)[0])
        masks_ok = torch.equal(got_mask, expected_mask) or torch.equal(
            got_mask, joint_augment(image, mask, scale, crop, top, left, flip, mask_mode="nearest-exact")[1])
        if images_ok and masks_ok:
            padded += bool((expected_mask == IGNORE).sum() > 1)
            continue
        for _, kwargs, mistake, fix in AUGMENT_VARIANTS:
            v_img, v_mask = joint_augment(image, mask, scale, crop, top, left, flip, **kwargs)
            if torch.equal(got_mask, v_mask) and (_same(got_img, v_img) or images_ok):
                raise fail(what, mistake, fix, case=case)
        allowed = set(_LABELS) | {IGNORE}
        invented = sorted(set(got_mask.unique().tolist()) - allowed)
        if invented:
            raise fail(what, f"the mask holds labels {invented} that the input mask does not have (it has "
                       f"{sorted(allowed)}): it was interpolated, not resized with nearest neighbour.",
                       f"{_NEAREST}.", case=case)
        if tuple(got_img.shape) != tuple(expected_img.shape):
            raise fail(what, f"the image comes back {list(got_img.shape)}; expected [3, crop, crop] = "
                       f"{list(expected_img.shape)}.", "resize to `(round(h * scale), round(w * scale))`, pad the "
                       "bottom and right up to `crop`, then take `crop` rows from `top` and `crop` columns from "
                       "`left`.", case=case)
        part = "image" if not images_ok else "mask"
        raise fail(what, f"the {part} differs from the expected one and matches none of the usual mistakes.",
                   "resize (image bilinear, mask nearest), pad bottom/right (image 0, mask 255), crop at "
                   "(top, left), flip both when `flip`.", case=case)
    student.refuse_reuse(fix="write the steps yourself with torch (F.interpolate, F.pad, slicing, flip), without "
                         "refinenet_edu.grading's joint_augment.")
    ok(f"{what}: image and mask resized together (mask by nearest neighbour, labels kept), padded with 0 and the "
       f"ignore label 255 ({padded} of {len(CASES)} cases needed padding), cropped and flipped together, at two "
       "image sizes.")
