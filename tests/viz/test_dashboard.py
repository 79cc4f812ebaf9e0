"""The ablation dashboard's callbacks: controls fire updates, "train now" adds a run, errors are shown."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from refinenet_edu.viz.dashboard import AblationDashboard  # noqa: E402
from _fake_results import CLASSES, fake_results, fake_run  # noqa: E402


class TinyVal:
    """Three 32x32 validation images with the fake results' palette."""

    class_names = CLASSES
    palette = [[i * 30, i * 20, i * 10] for i in range(7)]
    ids = ["a", "b", "c"]

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return np.full((32, 32, 3), 40 * i, np.uint8), np.full((32, 32), i, np.int64)


def fake_trainer(calls):
    def trainer(variant, *, epochs, **options):
        calls.append((variant, epochs, options))
        record = fake_run(variant, 0, 0.42)
        record["epochs"] = epochs
        return {"record": record, "costs": {"params": 123, "flops": 4.5e8, "inference_ms": {"cpu": 2.0}},
                "predictions": np.zeros((3, 32, 32), np.uint8)}

    return trainer


@pytest.fixture
def dash(tmp_path):
    calls = []
    d = AblationDashboard(fake_results(tmp_path), val_set=TinyVal(), trainer=fake_trainer(calls),
                          train_epochs=2, train_options={"subset": 8})
    d.calls = calls
    return d


def test_it_draws_everything_at_start(dash):
    for image in (dash.bars, dash.tradeoff, dash.per_class, dash.predictions):
        assert bytes(image.value).startswith(b"\x89PNG")
    assert list(dash.variants.value) == ["4-cascaded-crp4", "single-crp4", "4-cascaded-crp0"]
    assert dash.metric.value == "miou" and dash.cost.value == "params"
    assert "more than the seed spread" in dash.summary.value  # 4-cascaded vs single in the fake data
    assert dash.image_index.max == 2
    assert not dash.messages.outputs


def test_changing_the_metric_redraws_the_bars(dash):
    before, renders = dash.bars.value, dash.renders
    dash.metric.value = "iou/boat"
    assert dash.renders == renders + 1
    assert dash.bars.value != before
    assert "IoU of boat" in dash.summary.value


def test_choosing_variants_redraws(dash):
    bars, per_class, renders = dash.bars.value, dash.per_class.value, dash.renders
    dash.variants.value = ("4-cascaded-crp4", "single-crp4")
    assert dash.renders == renders + 1
    assert dash.bars.value != bars and dash.per_class.value != per_class
    assert "4-cascaded-crp0" not in dash.summary.value


def test_cost_and_image_controls(dash):
    trade = dash.tradeoff.value
    dash.cost.value = "inference_ms/cpu"
    assert dash.tradeoff.value != trade
    pred = dash.predictions.value
    dash.image_index.value = 2
    assert dash.predictions.value != pred


def test_train_button_adds_a_run(dash):
    dash.train_variant.value = "single-crp4"
    dash.train_button.click()
    assert dash.calls == [("single-crp4", 2, {"subset": 8, "data": "synthscenes"})]
    group = "single-crp4 (now, 2 ep)"
    assert group in dash.variants.options and group in dash.variants.value
    assert group in dash.live_runs
    assert dash.results.variants[group]["params"] == 123
    assert not dash.messages.outputs, dash.messages.outputs
    assert not dash.train_button.disabled
    # a second run of the same variant gets its own group
    dash.train_now("single-crp4", epochs=1)
    assert "single-crp4 (now, 1 ep)" in dash.variants.options


def test_a_misspelt_train_option_is_named_not_ignored(tmp_path):
    # the default trainer takes the options it knows only: a typo in train_options reaches the messages area
    d = AblationDashboard(fake_results(tmp_path), val_set=TinyVal(), train_epochs=1, train_options={"crop_szie": 64})
    d.train_button.click()
    text = "".join(o.get("text", "") for o in d.messages.outputs)
    assert "unexpected keyword argument 'crop_szie'" in text
    assert isinstance(d.last_error, TypeError) and not d.live_runs


def test_validation_images_that_cannot_be_loaded_are_named_once(tmp_path):
    d = AblationDashboard(fake_results(tmp_path), data=str(tmp_path / "no-such-data"), trainer=fake_trainer([]))
    d.image_index.value = 0
    d.draw_predictions()
    texts = [o.get("text", "") for o in d.messages.outputs]
    assert len(texts) == 1 and "predictions: no validation images of" in texts[0] and "no-such-data" in texts[0]
    assert d.val_set is None and d.renders > 0  # the charts were drawn all the same


def test_errors_in_callbacks_are_shown_not_swallowed(tmp_path):
    def broken(variant, *, epochs, **options):
        raise RuntimeError("no GPU today")

    d = AblationDashboard(fake_results(tmp_path), val_set=TinyVal(), trainer=broken)
    d.train_button.click()
    text = "".join(o.get("text", "") for o in d.messages.outputs)
    assert "error in train_now" in text
    assert "no GPU today" in text and "RuntimeError" in text
    assert isinstance(d.last_error, RuntimeError)
    assert not d.train_button.disabled


def test_a_failed_training_is_reported_once_also_under_ipython(tmp_path):
    # in a kernel the train log (an Output widget) swallows what is raised inside it; the error must still reach
    # the messages area, and the dashboard must not go on as if the run had finished
    interactive = pytest.importorskip("IPython.core.interactiveshell").InteractiveShell
    interactive.instance()
    try:
        def broken(variant, *, epochs, **options):
            raise RuntimeError("no GPU today")

        d = AblationDashboard(fake_results(tmp_path), val_set=TinyVal(), trainer=broken)
        d.train_button.click()
    finally:
        interactive.clear_instance()
    assert isinstance(d.last_error, RuntimeError) and not d.live_runs
    text = "".join(o.get("text", "") for o in d.messages.outputs)
    assert "no GPU today" in text and "UnboundLocalError" not in text


def test_several_results_sets(tmp_path):
    a = fake_results(tmp_path / "a")
    b = fake_results(tmp_path / "b")
    b.data["runs"] = [r for r in b.runs if r["variant"] != "4-cascaded-crp0"]
    d = AblationDashboard({"A": a, "B": b}, val_set=TinyVal(), trainer=fake_trainer([]))
    assert d.source.layout.display != "none"
    d.source.value = "B"
    assert "4-cascaded-crp0" not in d.variants.options
    assert not d.messages.outputs


def test_switching_results_sets_keeps_the_chosen_metric_and_cost(tmp_path):
    d = AblationDashboard({"A": fake_results(tmp_path / "a"), "B": fake_results(tmp_path / "b")},
                          val_set=TinyVal(), trainer=fake_trainer([]))
    d.metric.value, d.cost.value, d.train_variant.value = "iou/boat", "inference_ms/cpu", "single-crp4"
    d.source.value = "B"
    assert (d.metric.value, d.cost.value, d.train_variant.value) == ("iou/boat", "inference_ms/cpu", "single-crp4")
    assert "IoU of boat" in d.summary.value
    assert not d.messages.outputs


def pretrained_set(tmp_path, sha256):
    """Fake results whose runs started from the shipped pretrained encoder (as results/ablation-pretrained)."""
    results = fake_results(tmp_path)
    budget = results.data.setdefault("budget", {})
    budget["encoder_weights"] = {"file": "course-encoder-pretrained.pt", "sha256": sha256}
    budget.setdefault("train", {})["encoder_lr_ratio"] = 0.1
    return results


def test_train_now_on_a_pretrained_set_starts_from_the_same_encoder(tmp_path, capsys):
    import hashlib

    from refinenet_edu.resources import resource

    encoder = resource("data", "checkpoints", "course-encoder-pretrained.pt")
    calls = []
    d = AblationDashboard(pretrained_set(tmp_path, hashlib.sha256(encoder.read_bytes()).hexdigest()),
                          val_set=TinyVal(), trainer=fake_trainer(calls), train_epochs=2)
    group = d.train_now("single-crp4")
    (variant, epochs, options), = calls
    assert options["encoder_weights"] == str(encoder) and options["encoder_lr_ratio"] == 0.1
    assert group == "single-crp4 (now, 2 ep, pretrained encoder)"
    log = capsys.readouterr().out  # the train log (an Output widget) without a kernel
    assert "from the pretrained encoder course-encoder-pretrained.pt" in log


def test_train_now_says_so_when_the_sets_encoder_is_not_here(tmp_path, capsys):
    calls = []
    d = AblationDashboard(pretrained_set(tmp_path, "0" * 64), val_set=TinyVal(), trainer=fake_trainer(calls),
                          train_epochs=2)
    group = d.train_now("single-crp4")
    assert "encoder_weights" not in calls[0][2]
    assert group == "single-crp4 (now, 2 ep, from scratch)"
    log = capsys.readouterr().out
    assert "from scratch: " in log and "course-encoder-pretrained.pt is missing or is not the encoder" in log


def test_runs_of_another_budget_are_not_compared_and_do_not_squash_the_axis(dash):
    from refinenet_edu.viz.plots import plot_bars

    dash.train_now("single-crp4", epochs=2)  # fake: mIoU 0.42 after 2 epochs, shipped runs had 1
    group = "single-crp4 (now, 2 ep)"
    assert dash.variants.options[0] == group  # the new run is at the top of the list, in sight
    dash.variants.value = ("4-cascaded-crp4", group, "single-crp4")
    assert f"{group}: not compared with 4-cascaded-crp4, trained with another budget" in dash.summary.value
    assert "2 epochs vs 1 epoch)" in dash.summary.value
    assert "more than the seed spread" in dash.summary.value  # the shipped pair is still compared
    fig = plot_bars(dash.results, list(dash.variants.value), "miou")
    bottom, top = fig.axes[0].get_ylim()
    assert bottom > 42  # the axis fits the shipped runs (60-72%), not the live run's 42%
    assert any("below the axis" in t.get_text() for t in fig.axes[0].texts)


def test_a_cost_no_selected_variant_has_says_so(dash):
    dash.variants.value = ("4-cascaded-crp4", "single-crp4")
    dash.cost.value = "inference_ms/cpu"
    assert dash.tradeoff_note.value == ""
    dash.results.variants["single-crp4"]["inference_ms"] = {}
    dash.results.variants["4-cascaded-crp4"]["inference_ms"] = {}
    dash.draw_tradeoff()
    assert "none of the selected variants has" in dash.tradeoff_note.value
    assert "4-cascaded-crp0" in dash.tradeoff_note.value  # where it was measured
    dash.variants.value = ("4-cascaded-crp4", "4-cascaded-crp0")
    assert "not drawn" in dash.tradeoff_note.value and "4-cascaded-crp4" in dash.tradeoff_note.value


def test_a_stored_dashboard_shows_a_picture_where_the_widget_cannot_run(dash):
    """Issue 18: read without a kernel (site, GitHub), the dashboard cell showed ``VBox(children=...``."""
    import base64

    import nbformat
    from nbconvert import HTMLExporter

    data = dash._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data  # JupyterLab with a kernel: the live widget
    assert base64.b64decode(data["image/png"]) == dash.bars.value  # the chart as drawn for this selection
    assert data["image/png"] in data["text/html"] and "VBox" not in data["text/plain"]
    assert all(name in data["text/html"] for name in dash.selected)

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "dash", outputs=[nbformat.v4.new_output("display_data", data=data)])])
    page, _ = HTMLExporter().from_notebook_node(nb)  # no widget state stored, as in the course's notebooks
    assert data["image/png"][:200] in page and "VBox(children" not in page
    assert "Ablation dashboard</b> (a static picture" in page


def test_the_picture_follows_the_selection(dash):
    before = dash._repr_mimebundle_()["image/png"]
    dash.variants.value = dash.variants.options[:1]
    after = dash._repr_mimebundle_()
    assert after["image/png"] != before and dash.variants.options[0] in after["text/html"]
