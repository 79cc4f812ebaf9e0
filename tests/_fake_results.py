"""A hand-made ablation results file with known numbers, shared by the ablation and dashboard tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refinenet_edu.experiments.results import AblationResults
from refinenet_edu.experiments.variants import parse_variant

CLASSES = ["background", "water", "pavement", "boat", "car", "wire", "dot"]


def fake_run(variant: str, seed: int, miou: float, boat: float = 0.5, car: float = 0.5) -> dict:
    iou = {c: miou for c in CLASSES}
    iou.update(boat=boat, car=car)
    return {
        "variant": variant, "label": parse_variant(variant).label, "seed": seed, "miou": miou,
        "pixel_accuracy": miou + 0.1, "mean_class_accuracy": miou, "iou": iou,
        "boundary_miou": {"1": miou - 0.2, "2": miou - 0.1}, "boundary_accuracy": {"1": 0.5, "2": 0.6},
        "params": 1000, "train_seconds": 1.0, "epochs": 1, "device": "cpu", "precision": "float32",
    }


def fake_results(tmp_path: Path | None = None) -> AblationResults:
    """4-cascaded clearly above single; CRP on vs off within the seed spread; predictions for seed 0."""
    r = AblationResults()
    r.data["dataset"] = {"class_names": CLASSES, "palette": [[i * 30, i * 20, i * 10] for i in range(7)], "num_classes": 7}
    values = {
        "4-cascaded-crp4": ([0.70, 0.71, 0.72], 0.80),
        "single-crp4": ([0.60, 0.61, 0.62], 0.60),
        "4-cascaded-crp0": ([0.69, 0.72, 0.70], 0.70),
    }
    for name, (mious, boat) in values.items():
        r.variants[name] = {**parse_variant(name).as_dict(), "params": {"4-cascaded-crp4": 3e6}.get(name, 2e6),
                            "flops": 1e9, "inference_ms": {"cpu": 10.0 if name != "single-crp4" else 8.0}}
        for seed, m in enumerate(mious):
            r.add_run(fake_run(name, seed, m, boat=boat, car=boat))
    if tmp_path is not None:
        pred_dir = tmp_path / "predictions"
        pred_dir.mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(values):
            masks = np.full((3, 32, 32), k, dtype=np.uint8)
            np.savez_compressed(pred_dir / f"{name}__seed0.npz", masks=masks, ids=np.array(["a", "b", "c"]))
            for run in r.runs:
                if run["variant"] == name and run["seed"] == 0:
                    run["predictions"] = f"predictions/{name}__seed0.npz"
        r.save(tmp_path)
        r = AblationResults.load(tmp_path)
    return r
