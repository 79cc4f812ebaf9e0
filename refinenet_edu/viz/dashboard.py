"""The ablation dashboard: a thin ipywidgets layer over :mod:`refinenet_edu.experiments.comparison`.

``AblationDashboard("results/ablation")`` (or ``{"30 epochs": ..., "60 epochs": ...}``), displayed in a notebook.
Controls: the results set, the variants to compare, the metric, the cost on the x axis of the trade-off chart, the
validation image, and "train now", which trains a chosen variant on this machine and adds it under its own name
(never averaged with the shipped runs, which had another budget). Every chart is a PNG in an ``ipywidgets.Image``
drawn by :mod:`refinenet_edu.viz.plots`; the callbacks only read the controls and set the images. An error inside
a callback is shown in the dashboard's "messages" area, never swallowed.
"""

from __future__ import annotations

import base64
import html
import traceback
from typing import Any, Callable, Mapping

from refinenet_edu.experiments import comparison
from refinenet_edu.experiments.results import AblationResults, add_live_run, load_predictions, load_results
from refinenet_edu.resources import resource
from refinenet_edu.viz.plots import figure_png, plot_bars, plot_per_class, plot_predictions, plot_tradeoff

__all__ = ["AblationDashboard", "default_trainer"]

#: The comparisons shown first: the cascades and chained residual pooling on/off.
DEFAULT_SELECTION = ("4-cascaded-crp4", "2-cascaded-crp4", "single-crp4", "4-cascaded-crp0")


def default_trainer(variant: str, *, epochs: int, preset: str = "course", data: str = "synthscenes",
                    subset: int | None = None, crop_size: int | None = None, batch_size: int | None = None,
                    seed: int = 0, device: str = "auto", precision: str | None = None, progress: bool = True,
                    encoder_weights: str | None = None, encoder_lr_ratio: float | None = None) -> dict:
    """Train ``variant`` now (see :func:`refinenet_edu.experiments.runner.train_variant`) and measure it.

    ``encoder_weights`` / ``encoder_lr_ratio``: start from a pretrained encoder
    and fine-tune it slower, as ``ablate --encoder-weights`` does.
    Returns ``{"record", "costs", "predictions"}`` for :func:`~refinenet_edu.experiments.results.add_live_run`.
    """
    from refinenet_edu.experiments.runner import budget_for, time_inference, train_variant, variant_costs
    from refinenet_edu.datasets.info import DatasetInfo
    from refinenet_edu.engine.inference import predict_dataset

    cfg = budget_for(preset, epochs=epochs, crop_size=crop_size, batch_size=batch_size, device=device,
                     precision=precision, eval_every=max(1, epochs), encoder_lr_ratio=encoder_lr_ratio)
    record, model, val_set = train_variant(variant, seed, preset=preset, data=data, train_config=cfg,
                                           subset=subset, progress=progress, encoder_weights=encoder_weights)
    costs = variant_costs(variant, preset=preset, num_classes=DatasetInfo.of(val_set).num_classes,
                          input_size=(cfg.crop_size, cfg.crop_size))
    t = time_inference(model, (cfg.crop_size, cfg.crop_size), device=device, precision=cfg.precision)
    costs["inference_ms"] = {t["device"]: round(t["ms_per_image"], 3)}
    return {"record": record, "costs": costs, "predictions": predict_dataset(model, val_set)}


class AblationDashboard:
    """Pick variants and a metric; bars with seed error bars, accuracy against cost,
    per-class IoU, predictions side by side, and a "train now" control.

    ``results``: an :class:`~refinenet_edu.experiments.results.AblationResults`, a path to
    one, or a mapping ``{name: results or path}`` of several (e.g. two budgets).
    ``trainer``: what "train now" calls, ``trainer(variant, epochs=..., **train_options)``
    returning ``{"record", "costs", "predictions"}`` (default :func:`default_trainer`).
    ``train_options``: passed to it (e.g. ``subset=32, crop_size=64`` for a quick run).
    ``val_set``: the validation images for the predictions view (default: the
    ``data`` set's ``val`` split, untransformed).
    """

    def __init__(self, results, *, data: str = "synthscenes", trainer: Callable[..., dict] | None = None,
                 train_epochs: int = 5, train_options: Mapping[str, Any] | None = None, val_set=None):
        import ipywidgets as w

        self.sets = self._load_sets(results)
        self.data = data
        self.trainer = trainer or default_trainer
        self.train_options = dict(train_options or {})
        self.renders = 0  # how many times the charts were drawn (tests and curious readers)
        self.live_runs: list[str] = []

        name = next(iter(self.sets))
        self.results = self.sets[name]

        self.source = w.Dropdown(options=list(self.sets), value=name, description="results")
        self.source.layout.display = None if len(self.sets) > 1 else "none"
        self.variants = w.SelectMultiple(description="variants", rows=8, layout=w.Layout(width="380px"))
        self.metric = w.Dropdown(description="metric", layout=w.Layout(width="380px"))
        self.cost = w.Dropdown(description="cost (x)", layout=w.Layout(width="380px"))
        self.image_index = w.IntSlider(description="val image", min=0, max=0, value=0, continuous_update=False)
        self.bars = w.Image(format="png", layout=w.Layout(max_width="760px"))
        self.tradeoff = w.Image(format="png", layout=w.Layout(max_width="640px"))
        self.tradeoff_note = w.HTML()
        self.per_class = w.Image(format="png", layout=w.Layout(max_width="860px"))
        self.predictions = w.Image(format="png", layout=w.Layout(max_width="980px"))
        self.summary = w.HTML()
        self.messages = w.Output(layout=w.Layout(border="1px solid #ddd", max_height="260px", overflow="auto"))
        self.train_variant = w.Dropdown(description="variant")
        self.train_epochs = w.BoundedIntText(value=train_epochs, min=1, max=500, description="epochs")
        self.train_button = w.Button(description="Train now", button_style="primary", icon="play")
        # the log's newest line stays in view: a column-reverse box keeps its scroll position at its end,
        # and the log inside it keeps its full height (flex 0 0 auto) so that the box, not the log, scrolls
        self.train_log = w.Output(layout=w.Layout(flex="0 0 auto"))
        log_box = w.Box([self.train_log], layout=w.Layout(border="1px solid #ddd", max_height="300px",
                                                          overflow="auto", display="flex", flex_flow="column-reverse"))
        log_box.add_class("train-log")

        self.val_set = val_set
        if val_set is None:
            from refinenet_edu.datasets import load_dataset

            try:
                self.val_set = load_dataset(data, "val")
            except Exception as err:  # noqa: BLE001 - the charts still work: the predictions view stays empty, says why
                self.messages.append_stderr(f"predictions: no validation images of {data!r} ({err}); "
                                            "pass data= (a dataset name or folder) or val_set=\n")

        self._fill_options()
        self.source.observe(self._guard(self._on_source), names="value")
        self.variants.observe(self._guard(self.refresh), names="value")
        self.metric.observe(self._guard(self._on_metric), names="value")
        self.cost.observe(self._guard(self.draw_tradeoff), names="value")
        self.image_index.observe(self._guard(self.draw_predictions), names="value")
        self.train_button.on_click(self._guard(self.train_now))

        tabs = w.Tab(children=[
            w.VBox([self.bars, self.summary]),
            w.VBox([self.tradeoff, self.tradeoff_note]),
            self.per_class,
            w.VBox([self.image_index, self.predictions]),
            w.VBox([w.HBox([self.train_variant, self.train_epochs, self.train_button]), log_box]),
        ], titles=("mean ± std", "accuracy vs cost", "per class", "predictions", "train now"))
        self.widget = w.VBox([w.HBox([w.VBox([self.source, self.metric, self.cost]), self.variants]), tabs,
                              w.HTML("<b>messages</b>"), self.messages], layout=w.Layout(width="100%"))
        self.widget.add_class("ablation-dashboard")
        self.refresh()

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _load_sets(results) -> dict:
        if not isinstance(results, Mapping):
            r = results if isinstance(results, AblationResults) else load_results(results)
            epochs = r.data.get("budget", {}).get("train", {}).get("epochs")
            results = {f"{epochs} epochs" if epochs else "results": r}
        if not results:
            raise ValueError("no results to show")
        return {str(k): v if isinstance(v, AblationResults) else load_results(v) for k, v in results.items()}

    def _fill_options(self) -> None:
        from refinenet_edu.experiments.variants import DEFAULT_GRID

        self._filling = True  # the option changes below must not redraw one chart per change
        try:
            # runs trained now come first, where the list shows them without scrolling
            names = sorted(comparison.groups(self.results), key=lambda n: not self.results.variants.get(n, {}).get("live"))
            keep = [v for v in (self.variants.value or DEFAULT_SELECTION) if v in names]
            self.variants.options = names
            self.variants.value = tuple(keep or names[:4])
            metrics = comparison.metric_names(self.results)
            scores = [m for m in metrics if m not in ("params", "flops")]
            self._set_choices(self.metric, [(comparison.metric_label(m), m) for m in scores], "miou")
            costs = ["params", "flops"] + [m for m in metrics if m.startswith("inference_ms/")]
            self._set_choices(self.cost, [(comparison.metric_label(m), m) for m in costs], "params")
            trainable = [v.name for v in DEFAULT_GRID] + [n for n in self.results.variant_names()
                                                           if not self.results.variants.get(n, {}).get("live")]
            names = list(dict.fromkeys(trainable))
            self._set_choices(self.train_variant, names, names[0])
            self.image_index.max = max(0, len(self.val_set) - 1) if self.val_set is not None else 0
        finally:
            self._filling = False

    @staticmethod
    def _set_choices(dropdown, options: list, default) -> None:
        """New options for ``dropdown``, keeping the reader's choice when the new options still have it."""
        chosen = dropdown.value
        dropdown.options = options
        values = [o[1] if isinstance(o, tuple) else o for o in options]
        dropdown.value = chosen if chosen in values else default

    def _guard(self, fn: Callable[[], object]) -> Callable:
        """A control's callback: runs ``fn()``, and shows any error in ``messages`` (never swallows it)."""

        def wrapped(*_):
            if self._filling:
                return
            try:
                fn()
            except Exception as err:  # noqa: BLE001 - shown to the reader, kept even where no kernel routes output
                self.messages.append_stderr(f"error in {fn.__name__}: {type(err).__name__}: {err}\n"
                                            + traceback.format_exc())
                self.last_error = err

        return wrapped

    # ------------------------------------------------------------------ callbacks
    def _on_source(self) -> None:
        self.results = self.sets[self.source.value]
        self._fill_options()
        self.refresh()

    def _on_metric(self) -> None:  # the per-class chart and the predictions do not depend on it
        self.draw_bars()
        self.draw_tradeoff()

    # ------------------------------------------------------------------ drawing
    @property
    def selected(self) -> list[str]:
        return list(self.variants.value)

    def refresh(self) -> None:
        """Redraw every chart."""
        self.draw_bars()
        self.draw_tradeoff()
        self.draw_per_class()
        self.draw_predictions()

    def draw_bars(self) -> None:
        self.bars.value = figure_png(plot_bars(self.results, self.selected, self.metric.value))
        self.summary.value = self._summary_html()
        self.renders += 1

    def draw_tradeoff(self) -> None:
        self.tradeoff.value = figure_png(
            plot_tradeoff(self.results, self.selected, self.metric.value, x=self.cost.value))
        measured = comparison.summarize(self.results, self.cost.value)  # the variants that have this cost
        missing = [n for n in self.selected if n not in measured]
        label = comparison.metric_label(self.cost.value)
        if self.selected and len(missing) == len(self.selected):
            self.tradeoff_note.value = (f"<i>none of the selected variants has {label}; it was measured for "
                                        f"{', '.join(measured) or 'no variant'}: choose another cost</i>")
        elif missing:
            self.tradeoff_note.value = f"<i>not drawn, no {label}: {', '.join(missing)}</i>"
        else:
            self.tradeoff_note.value = ""

    def draw_per_class(self) -> None:
        self.per_class.value = figure_png(plot_per_class(self.results, self.selected))

    def draw_predictions(self) -> None:
        ds = self.val_set
        if ds is None or not self.selected:
            return
        i = int(self.image_index.value)
        image, mask = ds[i]
        preds = {}
        for name in self.selected:
            got = load_predictions(self.results, name)
            masks = got[0] if got is not None else None
            preds[name] = masks[i] if masks is not None and i < len(masks) else None
        fig = plot_predictions(image, mask, preds, ds.palette, ds.class_names)
        ids = getattr(ds, "ids", None)
        if ids is not None:
            fig.suptitle(f"validation image {ids[i]} (predictions of the first seed)", fontsize=8)
        self.predictions.value = figure_png(fig)

    def _summary_html(self) -> str:
        names = self.selected
        metric = self.metric.value
        if len(names) < 2:
            return "<i>select two or more variants to compare them</i>"
        first = names[0]
        lines = []
        for other in names[1:]:
            if self._budget(first) != self._budget(other):
                lines.append(f"{other}: not compared with {first}, trained with another budget "
                             f"({self._budget_text(other)} vs {self._budget_text(first)})")
                continue
            try:
                c = comparison.compare(self.results, first, other, metric)
            except KeyError:
                continue
            scale, unit = (100.0, " points") if comparison.is_fraction(metric) else (1.0, "")
            lines.append(c.sentence(scale, unit))
        return "<br>".join(f"<code>{line}</code>" for line in lines)

    def _budget(self, name: str) -> tuple:
        """What a group's runs were trained with: epochs and training images."""
        runs = [r for r in self.results.runs if comparison.run_group(r) == name]
        return tuple(sorted({(r.get("epochs"), r.get("train_images")) for r in runs}, key=str))

    def _budget_text(self, name: str) -> str:
        return ", ".join(f"{e} epoch{'' if e == 1 else 's'}" + (f" of {n} images" if n else "")
                         for e, n in self._budget(name))

    # ------------------------------------------------------------------ train now
    def train_now(self, variant: str | None = None, epochs: int | None = None) -> str:
        """Train ``variant`` (default: the control's) for ``epochs`` now and add it; returns its group name."""
        variant = variant or self.train_variant.value
        epochs = int(epochs or self.train_epochs.value)
        options, start, tag = self.train_start()
        self.train_button.disabled = True
        failed = None
        try:
            # in a kernel, an Output widget shows and swallows an exception raised inside it: keep it, raise it below
            with self.train_log:
                print(f"training {variant} for {epochs} epoch(s) now, {start} ...", flush=True)
                try:
                    out = self.trainer(variant, epochs=epochs, data=self.data, **options)
                except Exception as err:  # noqa: BLE001 - raised again below, for the messages area
                    failed = err
                else:
                    rec = out["record"]
                    print(f"done: mIoU {rec['miou']:.4f} in {rec['train_seconds']:.0f} s on {rec['device']}",
                          flush=True)
        finally:
            self.train_button.disabled = False
        if failed is not None:
            raise failed
        new, group = add_live_run(self.results, out["record"], costs=out.get("costs"),
                                  predictions=out.get("predictions"), group=f"{variant} (now, {epochs} ep{tag})")
        self.results = new
        self.sets[self.source.value] = new
        self.live_runs.append(group)
        self._fill_options()
        self.variants.value = tuple(dict.fromkeys([*self.variants.value, group]))  # redraws every chart
        return group

    def train_start(self) -> tuple[dict, str, str]:
        """The trainer's options for "Train now", where its training starts (in words) and the run's name tag.

        A run trained now starts as the selected set's runs did: a set trained from a pretrained encoder
        names the encoder's file and SHA-256, and "Train now" loads that file (shipped in
        ``data/checkpoints/``) with the set's encoder learning-rate ratio. When the file is missing or
        differs, the run trains from scratch and its name says so, so that it is not read as comparable.
        """
        from refinenet_edu.experiments.runner import encoder_fingerprint

        options = dict(self.train_options)
        encoder = self.results.data.get("budget", {}).get("encoder_weights")  # the encoder its runs started from
        if options.get("encoder_weights"):
            return options, f"from the encoder {options['encoder_weights']}", ", given encoder"
        if not encoder:
            return options, "from scratch", ""
        path = resource("data", "checkpoints", encoder["file"])
        if not path.is_file() or encoder_fingerprint(path)["sha256"] != encoder.get("sha256"):
            return options, (f"from scratch: {path} is missing or is not the encoder this set's runs started from"), \
                ", from scratch"
        ratio = self.results.data["budget"].get("train", {}).get("encoder_lr_ratio")
        options.update(encoder_weights=str(path), encoder_lr_ratio=options.get("encoder_lr_ratio") or ratio)
        return options, f"from the pretrained encoder {path.name}, as this set's runs", ", pretrained encoder"

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs) -> dict:
        """The live widget, and a static picture for every place that cannot run it.

        JupyterLab with a running kernel shows the widget. A stored notebook read without a kernel (GitHub,
        nbviewer, the course site: nbconvert skips a widget view whose state was not saved) shows the next
        format instead: a picture of the dashboard's first tab as it was drawn (the mean +- std bars of the
        selected variants and the comparison sentences), not the widget's ``VBox(children=...`` text.
        """
        data = self.widget._repr_mimebundle_(**kwargs)
        png = base64.b64encode(self.bars.value).decode("ascii")
        names = ", ".join(self.selected) or "none"
        data["text/html"] = (
            '<div class="ablation-dashboard-static">'
            "<p><b>Ablation dashboard</b> (a static picture: run the notebook in JupyterLab to use its controls)."
            f" Results: {html.escape(str(self.source.value))}; metric: {html.escape(str(self.metric.value))};"
            f" variants: {html.escape(names)}.</p>"
            f'<img alt="mean and standard deviation over seeds of the selected variants" '
            f'src="data:image/png;base64,{png}" style="max-width:760px;width:100%">'
            f"<p>{self.summary.value}</p></div>"
        )
        data["image/png"] = png
        data["text/plain"] = f"<AblationDashboard: {names}>"
        return data
