"""The results file of an ablation: runs, per-variant costs, the budget, the dataset, provenance.

:class:`AblationResults` reads and writes ``results.json`` (and ``results.csv`` / ``summary.csv`` beside it);
:func:`load_results` opens the shipped or any other set; :func:`add_live_run` adds a run trained now (from the
dashboard) under its own group; :func:`combine_results` puts several sets side by side, each under its own label (a
comparison of budgets, such as the training loss, which one results file cannot hold); :func:`load_predictions` reads a
run's stored validation masks (:func:`pack_masks` / :func:`unpack_masks`).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
from pathlib import Path

from refinenet_edu.experiments.comparison import groups, run_group
from refinenet_edu.experiments.variants import parse_variant
from refinenet_edu.files import atomic_write_bytes
from refinenet_edu.resources import resource


FORMAT = "refinenet-edu-ablation"
VERSION = 1

#: seconds a write of results.json waits for another ablate's write to the same folder
RESULTS_LOCK_WAIT = 120.0


def pack_masks(masks) -> dict:
    """Arrays for ``np.savez`` of predicted masks: ``masks`` [N, H, W] when they share one
    size, else ``flat`` (all pixels, one after another) and ``shapes`` [N, 2]."""
    import numpy as np

    if isinstance(masks, np.ndarray):
        return {"masks": masks}
    return {"flat": np.concatenate([m.reshape(-1) for m in masks]),
            "shapes": np.array([m.shape for m in masks], dtype=np.int64)}


def unpack_masks(data):
    """The masks :func:`pack_masks` stored (an ``np.load`` result): an array or a list of arrays."""
    import numpy as np

    if "masks" in data:
        return data["masks"]
    flat, shapes = data["flat"], data["shapes"]
    ends = np.cumsum([h * w for h, w in shapes])
    return [flat[end - h * w:end].reshape(h, w) for end, (h, w) in zip(ends, shapes)]


class AblationResults:
    """The results file: runs, per-variant costs, the budget, the dataset and provenance.

    ``AblationResults.load(folder_or_json)`` reads ``results.json``; :meth:`save` writes it with ``results.csv`` and
    ``summary.csv`` beside it (atomically). Runs are keyed by ``(variant, seed)``.
    """

    def __init__(self, data: dict | None = None):
        data = dict(data or {})
        if data and data.get("format") != FORMAT:
            raise ValueError(f"not an ablation results file (format={data.get('format')!r}, expected {FORMAT!r})")
        self.data = {"format": FORMAT, "version": VERSION, "dataset": {}, "budget": {}, "variants": {}, "runs": [],
                     "provenance": {"invocations": []}, **data}
        self._own_runs: set[tuple[str, int]] = set()  # what this process added: it wins when merging
        self._own_invocations: list[dict] = []

    # ---- reading
    @classmethod
    def load(cls, path: str | os.PathLike) -> "AblationResults":
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no ablation results there ({_where_results_are(path)})")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        shapes = {"": dict, "runs": list, "variants": dict, "budget": dict, "dataset": dict, "provenance": dict}
        for key, kind in shapes.items():
            value = data if not key else data.get(key, kind()) if isinstance(data, dict) else None
            if not isinstance(value, kind):
                where = f"its {key!r}" if key else "it"
                raise ValueError(f"{path}: not an ablation results file ({where} is a JSON {type(value).__name__}, "
                                 f"expected {'an object' if kind is dict else 'a list'} of format {FORMAT!r}); "
                                 "move it away or choose another --out")
        try:
            results = cls(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}; move it away or choose another --out") from None
        results.path = path
        return results

    @property
    def runs(self) -> list[dict]:
        return self.data["runs"]

    @property
    def variants(self) -> dict[str, dict]:
        return self.data["variants"]

    @property
    def class_names(self) -> list[str]:
        names = self.data.get("dataset", {}).get("class_names")
        if names:
            return list(names)
        return list(self.runs[0]["iou"]) if self.runs else []

    def done(self) -> set[tuple[str, int]]:
        return {(r["variant"], int(r["seed"])) for r in self.runs}

    def variant_names(self) -> list[str]:
        """Variants in the order they were first added."""
        return list(dict.fromkeys([*self.variants, *(r["variant"] for r in self.runs)]))

    # ---- writing
    def add_run(self, record: dict) -> None:
        key = (record["variant"], int(record["seed"]))
        self.data["runs"] = [r for r in self.runs if (r["variant"], int(r["seed"])) != key] + [record]
        self._own_runs.add(key)

    def add_invocation(self, invocation: dict) -> None:
        """Record one invocation's provenance (kept when another process's results are merged in)."""
        self.data["provenance"]["invocations"].append(invocation)
        self._own_invocations.append(invocation)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write results.json, results.csv and summary.csv, merged with what is on disk.

        Under the folder's lock (:mod:`refinenet_edu.engine.locks`), the file is read again and the runs, variant costs
        and invocations another ``ablate`` wrote there since are kept; this process's own runs win for the same
        (variant, seed). So two ablate runs into one folder keep both their runs. A file on disk with runs of another
        budget is a ValueError.
        """
        from refinenet_edu.engine.locks import output_lock
        from refinenet_edu.files import remove_stale_temporaries

        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--out {folder}: is a file; a results folder was expected (choose another --out)")
        with output_lock(folder, wait=RESULTS_LOCK_WAIT):
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder, only=("results.json", "results.csv", "summary.csv"))
            if (folder / "results.json").is_file():
                self._merge(AblationResults.load(folder), folder)
            self.data["runs"].sort(key=lambda r: (self.variant_names().index(r["variant"]), int(r["seed"])))
            atomic_write_bytes(folder / "results.json", (json.dumps(self.data, indent=1) + "\n").encode())
            atomic_write_bytes(folder / "results.csv", self.csv().encode())
            atomic_write_bytes(folder / "summary.csv", self.summary_csv().encode())
        return folder / "results.json"

    def _merge(self, disk: "AblationResults", folder: Path) -> None:
        """Take in what ``disk`` (the file as it is now) holds that this process did not write."""
        require_same_budget(disk.data, self.data.get("budget"), folder)
        mine = {(r["variant"], int(r["seed"])): r for r in self.runs if (r["variant"], int(r["seed"])) in self._own_runs}
        runs = [r for r in disk.runs if (r["variant"], int(r["seed"])) not in mine]
        self.data["runs"] = runs + list(mine.values())
        variants = dict(disk.variants)
        for name, entry in self.variants.items():
            theirs = variants.get(name, {})
            variants[name] = {**theirs, **entry}
            for key in ("inference_ms", "inference_settings"):  # per device: the other devices' timings stay
                if key in theirs or key in entry:
                    variants[name][key] = {**theirs.get(key, {}), **entry.get(key, {})}
        self.data["variants"] = variants
        own_ids = {inv.get("id") for inv in self._own_invocations}
        self.data["provenance"] = {
            **disk.data.get("provenance", {}),
            "invocations": [inv for inv in disk.data.get("provenance", {}).get("invocations", [])
                            if inv.get("id") is None or inv.get("id") not in own_ids] + self._own_invocations,
        }

    def inference_devices(self) -> list[str]:
        """The devices on which inference was timed, in the order first seen."""
        return list(dict.fromkeys(d for v in self.variants.values() for d in v.get("inference_ms", {})))

    def csv(self) -> str:
        """One row per run: variant, seed, metrics, costs."""
        classes = self.class_names
        bands = sorted({int(k) for r in self.runs for k in r.get("boundary_miou", {})})
        devices = self.inference_devices()
        header = ["variant", "label", "seed", "cascade", "crp_blocks", "output_rcus", "light_weight",
                  "miou", "pixel_accuracy", "mean_class_accuracy"]
        header += [f"iou_{c}" for c in classes]
        header += [f"boundary_miou_{k}px" for k in bands] + [f"boundary_accuracy_{k}px" for k in bands]
        header += ["params", "flops"] + [f"inference_ms[{d}]" for d in devices]
        header += ["train_seconds", "epochs", "device", "precision"]
        rows = [header]
        for r in self.runs:
            v = parse_variant(r["variant"])
            costs = self.variants.get(r["variant"], {})
            row = [r["variant"], r.get("label", v.label), r["seed"], v.cascade, v.crp_blocks,
                   "" if v.output_rcus is None else v.output_rcus, int(v.light_weight),
                   r.get("miou"), r.get("pixel_accuracy"), r.get("mean_class_accuracy")]
            row += [r.get("iou", {}).get(c) for c in classes]
            row += [r.get("boundary_miou", {}).get(str(k)) for k in bands]
            row += [r.get("boundary_accuracy", {}).get(str(k)) for k in bands]
            row += [costs.get("params", r.get("params")), costs.get("flops")]
            row += [costs.get("inference_ms", {}).get(d) for d in devices]
            row += [r.get("train_seconds"), r.get("epochs"), r.get("device"), r.get("precision")]
            rows.append(row)
        return _csv_text(rows)

    def summary_csv(self) -> str:
        """One row per variant: runs, mean and sample standard deviation of the main metrics."""
        from refinenet_edu.experiments.comparison import metric_names, summarize

        metrics = [m for m in metric_names(self) if not m.startswith("inference_ms") and m not in ("params", "flops")]
        rows = [["variant", "label", "runs", "params", "flops"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]]
        stats = {m: summarize(self, m) for m in metrics}
        for name in self.variant_names():
            if not any(r["variant"] == name for r in self.runs):
                continue
            costs = self.variants.get(name, {})
            first = stats[metrics[0]][name]
            row = [name, parse_variant(name).label, first.n, costs.get("params"), costs.get("flops")]
            for m in metrics:
                s = stats[m].get(name)
                row += [s.mean if s else None, s.std if s else None]
            rows.append(row)
        return _csv_text(rows)


def _csv_text(rows: list[list]) -> str:
    """CSV with ``\\n`` line ends; None and NaN are empty cells."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        ["" if x is None or (isinstance(x, float) and math.isnan(x)) else x for x in row] for row in rows)
    return buf.getvalue()


def require_same_budget(data: dict, budget: dict | None, folder) -> None:
    """Refuse to add runs of ``budget`` to the results ``data`` in ``folder`` when it holds runs of another budget
    or data (a file without runs, from an invocation that failed before any finished, has nothing to compare)."""
    if data.get("runs") and data.get("budget") and budget and data["budget"] != budget:
        diffs = _budget_differences(data["budget"], budget)
        raise ValueError(
            f"{folder}/results.json holds runs trained with another budget or data ({'; '.join(diffs)}); "
            "every run of a comparison needs the same budget: choose another --out"
        )


def _budget_differences(old: dict, new: dict, prefix: str = "", words: tuple[str, str] = ("there", "now")) -> list[str]:
    diffs = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _budget_differences(a, b, f"{prefix}{k}.", words)
        elif a != b:
            diffs.append(f"{prefix}{k}: {a!r} {words[0]}, {b!r} {words[1]}")
    return diffs


def _with_recipe_defaults(budget: dict) -> dict:
    """``budget`` with the training options it leaves out filled in: the runner leaves out an option at its
    recipe default (``loss`` for cross-entropy, ``focal_gamma`` except for the focal loss), so that results
    files from before the option still match."""
    from refinenet_edu.engine.recipes import TrainConfig

    defaults = {"loss": TrainConfig.loss, "focal_gamma": TrainConfig.focal_gamma}
    return {**budget, "train": {**defaults, **budget.get("train", {})}}


def load_results(path: str | Path | None = None):
    """The :class:`AblationResults` in ``path`` (a folder or results.json; default: the shipped ``results/ablation``)."""
    return AblationResults.load(path if path is not None else resource("results", "ablation"))


def add_live_run(results, record: dict, *, costs: dict | None = None, predictions=None, group: str | None = None):
    """A copy of ``results`` with one more run (e.g. trained now, from the dashboard).

    The run is grouped under ``group`` (default: ``"<variant> (now, N epochs)"``) so that it is not averaged with runs
    of another budget; ``costs`` (params, flops, inference_ms) and ``predictions`` (uint8 ``[N, H, W]`` masks of the
    validation images, or a list of ``[H, W]`` masks when their sizes differ) are attached to that group. Returns
    ``(results, group)``.
    """
    new = copy.deepcopy(results)
    group = base = group or f"{record['variant']} (now, {record.get('epochs', '?')} ep)"
    k = 2
    while group in groups(new):
        group = f"{base} #{k}"
        k += 1
    rec = dict(record, group=group, live=True)
    new.data["runs"].append(rec)
    entry = dict(new.variants.get(record["variant"], {}))
    entry.pop("inference_ms", None)
    entry.update(costs or {})
    entry["live"] = True
    new.data["variants"][group] = entry
    if predictions is not None:
        new.live_predictions = {**getattr(results, "live_predictions", {}), group: predictions}
    return new, group


def combine_results(sets, *, variant: str | None = None) -> AblationResults:
    """Several results sets as one :class:`AblationResults`, each set's runs grouped under its label.

    ``sets`` maps a label to a results folder (or an :class:`AblationResults`), e.g. ``{"cross-entropy":
    "results/losses/cross-entropy", "focal": ...}``: one results file holds one budget, so runs that differ in a training
    option (``--loss``) live in separate folders, and this puts them side by side for the comparison functions and the
    figures, seeds kept (so a paired test can pair them). Each set must hold one variant, or ``variant`` picks it; all
    sets must be of the same data (the dataset's SHA-256). ``data["budgets"]`` keeps each set's budget and
    ``data["budget_differences"]`` how each differs from the first set's (``["train.loss: 'cross-entropy' in
    cross-entropy, 'focal' in focal"]``), so that what else differs between the sets is shown, not assumed.
    """
    combined = AblationResults()
    combined.data.update(budget={}, budgets={}, budget_differences={}, sets={})
    first_label, first_budget = "", None
    for label, source in sets.items():
        part = source if isinstance(source, AblationResults) else AblationResults.load(source)
        where = getattr(part, "path", label)
        names = {r["variant"] for r in part.runs}
        if variant is not None:
            names &= {variant}
        if len(names) != 1:
            found = f"runs of {sorted(names)}" if names else f"no runs of {variant!r}" if variant else "no runs"
            raise ValueError(f"{where}: {found}; combine_results needs one variant per set (pass variant=)")
        (name,) = names
        if not combined.data["dataset"]:
            combined.data["dataset"] = copy.deepcopy(part.data.get("dataset", {}))
        elif part.data.get("dataset", {}).get("sha256") != combined.data["dataset"].get("sha256"):
            raise ValueError(f"{where}: trained on other data than the first set (dataset SHA-256 differs)")
        budget = part.data.get("budget", {})
        if first_budget is None:
            first_label, first_budget = label, budget
        combined.data["budgets"][label] = budget
        combined.data["budget_differences"][label] = _budget_differences(
            _with_recipe_defaults(first_budget), _with_recipe_defaults(budget), words=(f"in {first_label}", f"in {label}"))
        combined.data["sets"][label] = str(where)
        combined.data["variants"][label] = {**copy.deepcopy(part.variants.get(name, {})), "variant": name}
        folder = {"predictions_folder": str(Path(part.path).parent)} if getattr(part, "path", None) else {}
        for run in part.runs:
            if run["variant"] == name:
                combined.data["runs"].append({**copy.deepcopy(run), "group": label, **folder})
        combined.data["provenance"]["invocations"] += copy.deepcopy(part.data["provenance"]["invocations"])
    return combined


def load_predictions(results, group: str, seed: int | None = None):
    """Predicted validation masks (uint8 ``[N, H, W]``, or a list of ``[H, W]`` masks when the
    images differ in size) of ``group`` and the image ids, or ``None``.

    Live runs keep theirs in memory; shipped runs in ``predictions/*.npz`` beside the results file (the first seed that
    has one, unless ``seed``).
    """
    import numpy as np

    live = getattr(results, "live_predictions", {})
    if group in live:
        return live[group], None
    folder = Path(getattr(results, "path", "results.json")).parent
    runs = sorted((r for r in results.runs if run_group(r) == group and r.get("predictions")), key=lambda r: r["seed"])
    if seed is not None:
        runs = [r for r in runs if int(r["seed"]) == seed]
    for r in runs:
        path = Path(r.get("predictions_folder", folder)) / r["predictions"]  # combine_results: each set's own
        if path.is_file():
            with np.load(path) as data:
                return unpack_masks(data), [str(i) for i in data["ids"]]
    return None


def _where_results_are(missing: Path) -> str:
    """What to do about a ``results.json`` that is not at ``missing``: the folders nearby that hold one (the
    folder above, those just below), else how one is made. A folder is suggested only if it holds results."""
    folder = missing.parent if missing.name == "results.json" else missing
    near = [folder.parent] + (sorted(p.parent for p in folder.glob("*/results.json")) if folder.is_dir() else [])
    found = [f for f in near if f != folder and (f / "results.json").is_file()]
    if found:
        return "results are in " + ", ".join(f"--out {f}" for f in found[:3]) + (", ..." if len(found) > 3 else "")
    return "refinenet-edu ablate writes results.json in its --out folder; run it first, or give the folder that holds one"
