"""``./course bench`` (smoke run + JSON schema) and the fast-inference helpers."""

from __future__ import annotations

import json

import pytest
import torch

from tooling import bench
from tooling.cli import main as tooling_main
from refinenet_edu.engine.inference import fast_inference, predict_labels, predict_scores
from refinenet_edu.engine.runtime import resolve_precision
from refinenet_edu.nn.model import build_refinenet
from refinenet_edu.nn.cost import count_flops

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TOP_KEYS = {
    "schema", "date", "commit", "dirty", "host", "platform", "cpu", "cpu_count", "torch_threads",
    "cpu_bf16_native", "load_average", "cuda", "versions", "settings", "memory_method", "peak", "rows", "comparisons",
}


def check_schema(result: dict, devices: set[str]) -> None:
    assert set(result) >= TOP_KEYS
    assert result["schema"] == bench.SCHEMA
    assert set(result["versions"]) >= {"python", "torch", "torchvision", "refinenet_edu"}
    assert result["rows"]
    for row in result["rows"]:
        assert set(row) == set(bench.ROW_KEYS), sorted(set(row) ^ set(bench.ROW_KEYS))
        assert row["device"] in devices
        assert row["mode"] in bench.MODES
        assert row["flops_per_image"] > 0 and row["parameters"] > 0
        if row["status"] != "ok":
            assert row["note"]
            continue
        assert row["iterations"] == len(row["times_ms"]) >= 1
        assert row["ms_per_image"] > 0 and row["images_per_s"] > 0 and row["tflops"] > 0
        assert row["ms_per_image"] == pytest.approx(1e3 / row["images_per_s"])
        if row["peak_tflops"] is not None:
            assert row["peak_fraction"] == pytest.approx(row["tflops"] / row["peak_tflops"])
    for peaks in result["peak"].values():
        for p in peaks.values():
            assert p["peak_tflops"] >= max(p["matmul_tflops"], p["conv_tflops"]) > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "smoke.json"
    assert tooling_main(["bench", "--smoke", "--quiet", "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_smoke_json_schema(smoke):
    check_schema(smoke, {"cpu", "cuda"})
    assert smoke["settings"]["input_size"] == [64, 64]
    rows = smoke["rows"]
    assert {r["family"] for r in rows} == {"refinenet", "fcn"}
    assert {r["mode"] for r in rows} == {"forward", "train"}
    assert {r["memory_format"] for r in rows} == {"contiguous", "channels_last"}
    fp32 = [r for r in rows if r["dtype"] == "fp32"]
    assert fp32 and all(r["status"] == "ok" for r in fp32)
    for r in rows:
        if r["status"] == "ok" and (r["dtype"], r["memory_format"], r["compiled"]) == bench.BASELINE:
            assert r["speedup_vs_fp32_eager"] == pytest.approx(1.0)
        if r["mode"] == "forward" and r["status"] == "ok":
            assert r["argmax_agreement"] is not None and r["argmax_agreement"] > 0.9
    # memory: measured on Linux (peak RSS), always on CUDA
    assert any(r["memory_mb"] is not None for r in rows)
    assert any(c["kind"] == "fastest_vs_fp32_eager" for c in smoke["comparisons"])


def test_smoke_table(smoke):
    text = bench.format_table(smoke)
    assert "| model | backbone | mode |" in text
    assert "peak probe" in text and "commit" in text
    assert "RefineNet course" in text and "FCN (torchvision)" in text


def test_flops_forward_matches_summary_and_train_is_about_3x():
    settings = bench.Settings(input_size=(64, 96))
    spec = bench.parse_model_spec("course")
    forward = bench.count_step_flops(spec, "forward", settings)
    with torch.device("meta"):
        model = build_refinenet("course")
    assert forward == count_flops(model, (64, 96))
    train = bench.count_step_flops(spec, "train", settings)
    assert 2.5 * forward < train < 3.5 * forward


@pytest.mark.parametrize(
    "text, expected",
    [
        ("official", bench.ModelSpec("official")),
        ("official@resnet50", bench.ModelSpec("official", "resnet50")),
        ("fcn@resnet101", bench.ModelSpec("fcn", "resnet101")),
        ("course:crp_blocks=2,widths=16/16/32/32", bench.ModelSpec("course", None, (("crp_blocks", 2), ("widths", (16, 16, 32, 32))))),
    ],
)
def test_parse_model_spec(text, expected):
    spec = bench.parse_model_spec(text)
    assert spec == expected
    assert bench.parse_model_spec(spec.text) == spec


@pytest.mark.parametrize(
    "text", ["resnet", "official@vgg16", "fcn@resnet18", "fcn:cascade=single", "official:cascade", "official:nope=1"]
)
def test_parse_model_spec_rejects(text):
    with pytest.raises(ValueError):
        bench.parse_model_spec(text)


def test_cli_bad_input_is_a_clean_error(capsys):
    assert tooling_main(["bench", "--models", "nonsense", "--quiet"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert tooling_main(["bench", "--models", "course", "--input-size", "16", "16", "--quiet"]) == 2


def test_peer_takes_the_refinenet_depth():
    specs = [bench.parse_model_spec(t) for t in ("official", "deeplabv3")]
    assert bench._peer_backbone(specs[1], specs, 21).backbone == "resnet101"
    specs = [bench.parse_model_spec(t) for t in ("course", "fcn")]
    assert bench._peer_backbone(specs[1], specs, 21).backbone == "resnet50"  # torchvision has no resnet18 FCN


def test_cpu_memory_measurement_sees_a_tensor():
    mb = bench.measure_memory(lambda: torch.ones(64, 2**20 // 4).sum(), torch.device("cpu"))  # 64 MiB
    if mb is None:
        pytest.skip("peak RSS cannot be reset on this OS")
    assert 48 < mb < 256


def test_compiled_case_is_time_boxed():
    case = bench.Case("course", "forward", "fp32", "contiguous", True, "cpu")
    info = bench._run_compiled_case(case, bench.Settings(input_size=(64, 64), compile_timeout=1.0), print)
    assert info["status"] == "skipped" and "longer than 1 s" in info["note"]


# ---------------------------------------------------------------- inference helpers
def test_resolve_precision():
    assert resolve_precision("fp32", "cpu") == torch.float32
    assert resolve_precision(torch.bfloat16, "cpu") == torch.bfloat16
    assert resolve_precision("auto", "cpu") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError):
        resolve_precision("int8", "cpu")


def test_predict_bf16_agrees_with_fp32_and_restores_mode():
    torch.manual_seed(0)
    model = build_refinenet("course", num_classes=4).train()
    x = torch.randn(2, 3, 96, 96)
    ref = predict_scores(model, x, precision="fp32", channels_last=False)
    assert model.training  # mode restored
    assert ref.shape == (2, 4, 96, 96) and ref.dtype == torch.float32
    # channels_last alone changes only the memory order: same numbers up to float rounding
    cl = predict_scores(model, x, precision="fp32", channels_last=True)
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
    fast = predict_scores(model, x, precision="bf16")
    assert fast.dtype == torch.float32
    assert (fast - ref).abs().max() < 0.1 * ref.std() + 1e-3
    labels = predict_labels(model, x, precision="bf16")
    assert labels.shape == (2, 96, 96) and labels.dtype == torch.int64
    assert (labels == ref.argmax(1)).float().mean() > 0.99


def test_fast_inference_turns_dropout_off_and_accepts_dict_outputs():
    class Wrapped(torch.nn.Module):  # like torchvision's segmentation models
        def __init__(self):
            super().__init__()
            self.net = build_refinenet("course", num_classes=3)

        def forward(self, x):
            return {"out": self.net(x)}

    model = Wrapped().train()
    x = torch.randn(1, 3, 64, 64)
    with fast_inference(model, precision="fp32") as run:
        assert not model.training
        a, b = run(x), run(x)
    torch.testing.assert_close(a, b)  # deterministic: dropout is off
    assert model.training


@needs_cuda
def test_bench_smoke_on_cuda():
    result = bench.run_bench(
        ["course", "fcn"], devices=["cuda"], settings=bench.Settings(input_size=(64, 64), iterations=1)
    )
    check_schema(result, {"cuda"})
    assert all(r["status"] == "ok" for r in result["rows"])
    assert all(r["memory_mb"] is not None and r["memory_mb"] > 0 for r in result["rows"])
    assert set(result["peak"]["cuda"]) >= {"fp32", "fp16"}


@needs_cuda
def test_predict_on_cuda_auto_precision():
    torch.manual_seed(0)
    model = build_refinenet("course", num_classes=4).cuda()
    x = torch.randn(2, 3, 96, 96, device="cuda")
    ref = predict_scores(model, x, precision="fp32", channels_last=False)
    labels = predict_labels(model, x)
    assert labels.device.type == "cuda"
    assert (labels == ref.argmax(1)).float().mean() > 0.99


def test_lean_grid_keeps_baseline_and_channels_last_only():
    result = bench.run_bench(
        ["course"], modes=["forward"], dtypes=["fp32", "bf16"], grid="lean", devices=["cpu"],
        settings=bench.Settings(input_size=(64, 64), iterations=1, probe=False),
    )
    cases = {(r["dtype"], r["memory_format"]) for r in result["rows"]}
    assert cases == {("fp32", "contiguous"), ("fp32", "channels_last"), ("bf16", "channels_last")}
    assert all(r["cpu_ms_per_image"] > 0 for r in result["rows"] if r["status"] == "ok")
    assert result["peak"] == {} and all(r["peak_fraction"] is None for r in result["rows"])
