"""The explorables' numbers (refinenet_edu.viz.explorables), at default values and at the controls' extremes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from refinenet_edu.viz import explorables as ex


# ---------------------------------------------------------------------------------------------------- 01: RCU
@pytest.mark.parametrize("n", range(0, ex.RCU_MAX_UNITS + 1))
def test_rcu_impulse_reaches_two_pixels_per_unit(n):
    r = ex.rcu_response(n, 1.0, "impulse")
    assert r["reach"] == r["formula_reach"] == 2 * n
    assert r["width"] == 1 + 4 * n  # the receptive field of notebook 01's section 4
    assert r["identity"] == (n == 0)


def test_rcu_defaults():
    r = ex.rcu_response()
    assert (r["num_rcus"], r["weight_scale"], r["pattern"]) == (1, 1.0, "impulse")
    assert r["width"] == 5 and r["notes"] == []
    assert r["gain"] > 0


def test_rcu_zero_weights_and_negative_input_are_the_identity():
    assert ex.rcu_response(5, 0.0)["identity"]  # the shortcut alone
    neg = ex.rcu_response(5, 2.0, "negative impulse")  # the first ReLU zeroes the input of the residual branch
    assert neg["identity"] and neg["reach"] == 0 and neg["gain"] == 0


def test_rcu_weight_scale_changes_height_not_width():
    small, large = ex.rcu_response(3, 0.5), ex.rcu_response(3, 3.0)
    assert small["width"] == large["width"] == 13
    assert large["gain"] > 10 * small["gain"]


def test_rcu_edge_reaches_left_of_the_edge():
    r = ex.rcu_response(3, 1.0, "edge")
    assert r["reach"] == 6 and r["width"] is None


def test_rcu_extremes_are_clamped_with_a_message():
    r = ex.rcu_response(-5, float("nan"), "square")
    assert (r["num_rcus"], r["weight_scale"], r["pattern"]) == (0, 0.0, "impulse")
    assert len(r["notes"]) == 3
    top = ex.rcu_response(10**6, 10**9)
    assert (top["num_rcus"], top["weight_scale"]) == (ex.RCU_MAX_UNITS, ex.RCU_MAX_SCALE)
    assert np.isfinite(top["output"]).all() and top["width"] == 1 + 4 * ex.RCU_MAX_UNITS


# ---------------------------------------------------------------------------------------------------- 02: fusion
def test_fusion_defaults_match_notebook_02():
    r = ex.fusion_maps()
    assert (r["coarse_stride"], r["mode"], r["index"]) == (16, "bilinear", 8)
    assert r["coarse"].shape == (8, 8) and r["upsampled"].shape == r["fine"].shape == (32, 32)
    np.testing.assert_allclose(r["fused"], r["upsampled"] + r["fine"], rtol=0, atol=1e-6)
    assert 0.0 < r["iou"] < 1.0


def test_fusion_at_the_fine_resolution_loses_nothing():
    for mode in ex.FUSION_MODES:
        r = ex.fusion_maps(4, mode)
        assert r["iou"] == 1.0 and r["mae"] < 1e-6


def test_fusion_coarser_is_worse_and_bicubic_overshoots():
    ious = [ex.fusion_maps(s, "bilinear")["iou"] for s in (8, 16, 32)]
    assert ious[0] > ious[1] > ious[2]
    lo, hi = ex.fusion_maps(16, "bicubic")["range"]
    assert lo < 0 or hi > 1  # cubic interpolation leaves [0, 1]; bilinear never does
    lo, hi = ex.fusion_maps(16, "bilinear")["range"]
    assert 0 <= lo and hi <= 1


def test_fusion_extremes():
    r = ex.fusion_maps(1000, "cubic", -3)
    assert (r["coarse_stride"], r["mode"], r["index"]) == (64, "nearest", 0) and len(r["notes"]) == 3
    assert ex.fusion_maps(12)["coarse_stride"] in ex.FUSION_STRIDES


# ---------------------------------------------------------------------------------------------------- 03: CRP
@pytest.mark.parametrize("n,p,convs", list(itertools.product((0, 1, 2, 4, 10), (1, 3, 5, 9, 15), ex.CRP_CONVS)))
def test_crp_measured_width_is_the_formula(n, p, convs):
    r = ex.crp_impulse(n, p, convs)
    extra = 2 if convs == "3x3 positive" else 0
    assert r["width"] == r["formula_width"] == 1 + n * (p - 1 + extra)


def test_crp_defaults_are_notebook_03s():
    r = ex.crp_impulse()
    assert (r["num_blocks"], r["pool_size"], r["convs"]) == (4, 5, "identity")
    assert r["width"] == 17 and r["formula"] == "1 + 4·(5 - 1) = 17"
    assert r["centre"] == 5.0  # the input and 4 pooled copies of it
    with_convs = ex.crp_impulse(4, 5, "3x3 positive")
    assert with_convs["width"] == 25  # notebook 03's 1 + 6n


def test_crp_uses_the_library_chain():
    # with a 5x5 pool and identity convolutions the explorable's response is notebook 03's impulse response
    from refinenet_edu import ChainedResidualPooling

    r = ex.crp_impulse(3, 5)
    crp = ChainedResidualPooling(1, 3).double()
    with torch.no_grad():
        for conv in crp.convs:
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1
        x = torch.zeros(1, 1, r["size"], r["size"], dtype=torch.float64)
        x[..., r["size"] // 2, r["size"] // 2] = 1
        np.testing.assert_array_equal(crp(x)[0, 0].numpy(), r["response"])


def test_crp_extremes():
    r = ex.crp_impulse(-1, 0, "nope")
    assert (r["num_blocks"], r["pool_size"], r["convs"]) == (0, 1, "identity") and r["width"] == 1
    assert len(r["notes"]) == 3
    even = ex.crp_impulse(2, 4)
    assert even["pool_size"] == 5 and any("even" in note for note in even["notes"])
    top = ex.crp_impulse(99, 99, "3x3 positive")
    assert top["width"] == 1 + ex.CRP_MAX_BLOCKS * (ex.CRP_MAX_POOL + 1)


# ---------------------------------------------------------------------------------------------------- 04, 05: shipped model
@pytest.fixture(scope="module")
def course():
    return ex.load_course_model()


def test_block_stages_reproduce_the_models_block(course):
    model, val = course
    r = ex.block_stages(model, val)
    assert r["block"] == "refinenet1" and r["matches_model"]
    assert [row["stage"] for row in r["stages"]] == ["adaptive: RefineNet-2 output", "adaptive: encoder 1/4",
                                                     "fusion", "CRP", "output RCUs"]
    assert all(row["change"] == 0 for row in r["stages"])
    assert r["stages"][2]["shape"][1:] == r["stages"][1]["shape"][1:]  # fusion goes to the finer path's size
    assert 0 < r["crp_share"] < 1 and 0 < r["output_share"] < 1


def test_block_path_switches(course):
    model, val = course
    off = ex.block_stages(model, val, 0, "refinenet1", [True, False])
    assert off["stages"][0]["change"] == 0 and off["stages"][1]["change"] == 1.0
    assert off["stages"][-1]["change"] > 0.1
    none = ex.block_stages(model, val, 10**6, "refinenet1", [False, False])
    assert none["index"] == len(val) - 1 and none["paths_on"] == [False, True]
    assert len(none["notes"]) == 2
    unknown = ex.block_stages(model, val, -1, "refinenet9", [False, False, False])
    assert unknown["block"] == "refinenet4" and unknown["paths_on"] == [True] and len(unknown["notes"]) == 3
    single = ex.block_stages(model, val, 0, "refinenet4")
    assert single["single_path"] and single["path_names"] == ["encoder 1/32"] and single["matches_model"]


def test_cascade_readout(course):
    model, val = course
    from refinenet_edu.datasets import eval_transforms, load_dataset

    prototypes = ex.class_prototypes(model, load_dataset("synthscenes", "train", eval_transforms()), 8)
    assert list(prototypes) == ["refinenet4", "refinenet3", "refinenet2", "refinenet1"]
    strides = {}
    for stage in prototypes:
        r = ex.cascade_readout(model, val, prototypes, 0, stage)
        strides[stage] = r["stride"]
        assert r["readout"].shape == r["mask"].shape == r["ceiling"].shape == r["prediction"].shape
        assert 0 <= r["readout_accuracy"] <= 1 and r["ceiling_accuracy"] <= 1
    assert strides == {"refinenet4": 32, "refinenet3": 16, "refinenet2": 8, "refinenet1": 4}
    # the ceiling rises with the resolution
    ceilings = [ex.cascade_readout(model, val, prototypes, 0, s)["ceiling_accuracy"] for s in prototypes]
    assert ceilings == sorted(ceilings)
    extreme = ex.cascade_readout(model, val, prototypes, -7, "refinenet0")
    assert extreme["index"] == 0 and extreme["stage"] == "refinenet4" and len(extreme["notes"]) == 2


# ---------------------------------------------------------------------------------------------------- figures, widgets
def test_default_figures_render():
    for draw in (ex.draw_rcu_response, ex.draw_fusion_maps, ex.draw_crp_impulse):
        png = ex.figure_png(draw())
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_widget_redraws_on_a_control_and_its_bundle_carries_the_figure():
    pytest.importorskip("ipywidgets")
    e = ex.explore_crp()
    before, text = e.image.value, e.text
    assert "measured width 17 px" in text
    e.controls["num_blocks"].value = 2
    assert e.image.value != before and "measured width 9 px" in e.text
    bundle = e._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/png" in bundle
    assert "explorable" in bundle["text/plain"]


def test_widget_shows_errors_in_its_readout():
    pytest.importorskip("ipywidgets")
    import ipywidgets as w

    def update(x):
        raise RuntimeError("boom")

    e = ex.Explorable({"x": w.IntSlider()}, update, name="test")
    assert "error in the test explorable: RuntimeError: boom" in e.text
