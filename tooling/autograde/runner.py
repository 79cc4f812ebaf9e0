"""The only place autograding runs a student's code: it computes outputs for the judge's inputs, nothing else.

Run as ``python -I runner.py`` in a sandbox (``sandbox.py``) where the library
``refinenet_edu`` cannot be imported or read, so it uses the standard library
and torch only. It reads ``request.pt`` from its working folder:

* ``prelude``: the imports the assignment's set-up cell gives the student;
* ``given``: ``(label, source, names)``: a module's source code, run on its
  own, whose ``names`` the task hands the student (the library's
  ``RefineNetBlock`` in the 4-cascade), before the student's cells;
* ``cells``: ``(label, source)`` of the student's solution cells, run in order;
* ``substitutes``: the same, after the student's cells: the reference for a
  part that failed its own test, so that one mistake costs one penalty;
* ``cases``: what to build or call, with the judge's inputs and weights.

and writes ``result.pt``: per cell the error it raised (if any), per case the
outputs, or the error and where. Nothing here decides a score: the judge, in
another process that never runs student code, compares these outputs with the
reference. A student's code can change anything in this process - it can
only change the outputs it hands back, which the judge checks.
"""

import os
import signal
import time
import traceback
import warnings

import torch

LIMIT_SECONDS = 10.0  # one case or one cell; the judge also limits the whole process


class Timeout(BaseException):
    """A case or cell ran past its limit (a BaseException: ``except Exception`` in student code can't catch it)."""


def _alarm(signum, frame):
    raise Timeout()


def error_text(err: BaseException, label_prefix: str = "<cell ") -> dict:
    """What went wrong, and the student's own line where it did."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith(label_prefix)]
    where = None
    if frames:
        f = frames[-1]
        where = f"{f.filename.strip('<>')}, line {f.lineno}" + (f": {f.line.strip()}" if f.line else "")
    text = " ".join(str(err).split())[:300]
    return {"type": type(err).__name__, "message": text, "where": where}


def plain(value, depth: int = 0):
    """``value`` as tensors, numbers, strings, lists and dicts only (what the judge loads safely)."""
    if depth > 4:
        return {"unsupported": "nested too deeply"}
    if isinstance(value, torch.Tensor):
        return value.detach().as_subclass(torch.Tensor).cpu().clone()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value if type(value) in (int, float) else float(value)
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in list(value)[:64]]
    if isinstance(value, dict):
        return {str(k)[:100]: plain(v, depth + 1) for k, v in list(value.items())[:64]}
    return {"unsupported": type(value).__name__}


def run_source(label: str, source: str, namespace: dict) -> dict | None:
    try:
        signal.setitimer(signal.ITIMER_REAL, LIMIT_SECONDS)
        exec(compile(source, f"<cell {label}>", "exec"), namespace)
    except Timeout:
        return {"type": "Timeout", "message": f"the cell did not finish within {LIMIT_SECONDS:.0f} s",
                "where": None}
    except BaseException as err:  # noqa: BLE001 - a student's cell may raise anything, SystemExit included
        return error_text(err)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def provide(label: str, source: str, names: list, namespace: dict) -> dict | None:
    """Run a module's ``source`` on its own and put its ``names`` into the student's namespace."""
    module = {"__name__": f"grader_{label}"}
    err = run_source(label, source, module)
    for name in names:
        namespace[name] = module.get(name)
    return err


def fresh(x, grad: bool):
    """A copy of the judge's input (a tensor, or a list of them) for the student's code to receive."""
    if isinstance(x, list):
        return [fresh(t, grad) for t in x]
    return x.clone().requires_grad_(grad and x.is_floating_point())


def flat(x) -> list:
    return [t for item in x for t in flat(item)] if isinstance(x, list) else [x]


def build(spec: dict, namespace: dict):
    """``{"__build__": name, "args": [...], "state": {...}, "train": bool}`` -> that module from the namespace."""
    module = namespace[spec["__build__"]](*spec.get("args", []))
    if "state" in spec:
        module.load_state_dict(spec["state"])
    module.train(spec.get("train", True))
    return module


def load_weights(module, names: list, values: list) -> None:
    """The judge's weights into the student's module: by the reference's names, else in registration order."""
    params = dict(module.named_parameters())
    if set(params) == set(names):
        targets = [params[n] for n in names]
    else:
        targets = list(params.values())
        have = [list(p.shape) for p in targets]
        want = [list(v.shape) for v in values]
        if have != want:
            raise LayoutError(f"its parameters have the shapes {have[:8]}{' ...' if len(have) > 8 else ''}, "
                              f"expected {want}")
    with torch.no_grad():
        for p, v in zip(targets, values):
            p.copy_(v)


class LayoutError(Exception):
    pass


def run_case(case: dict, namespace: dict) -> dict:
    op, name = case["op"], case["name"]
    if name not in namespace:
        return {"error": {"type": "NameError", "message": f"name {name!r} is not defined", "where": None}}
    out: dict = {}
    try:
        signal.setitimer(signal.ITIMER_REAL, case.get("limit", LIMIT_SECONDS))
        if op == "value":
            out["value"] = plain(namespace[name])
            return out
        args = [build(a, namespace) if isinstance(a, dict) and "__build__" in a else a for a in case["args"]]
        if op == "call":
            before = [a.clone() for a in args if isinstance(a, torch.Tensor)]
            value = namespace[name](*args, **case.get("kwargs", {}))
            out["requires_grad"] = bool(isinstance(value, torch.Tensor) and value.requires_grad)
            out["value"] = plain(value)
            after = [a for a in args if isinstance(a, torch.Tensor)]
            out["inputs_changed"] = any(not torch.equal(a, b) for a, b in zip(after, before))
            return out
        # op == "module": build the student's module (a class, or a function returning one), run it
        out["stage"] = "build"
        module = namespace[name](*args, **case.get("kwargs", {}))
        if not isinstance(module, torch.nn.Module):
            return {"error": {"type": "TypeError", "message": f"it returned a {type(module).__name__}, "
                              "not a torch.nn.Module", "where": None}, "stage": "build"}
        out["stage"] = "weights"
        load_weights(module, case["weight_names"], case["weights"])
        module.train(case.get("train", False))
        inputs = [fresh(x, case.get("grad") is not None) for x in case["inputs"]]
        out["stage"] = "forward"
        y = module(*inputs)
        out["inputs_changed"] = any(not torch.equal(x.detach(), x0)
                                    for x, x0 in zip(flat(inputs), flat(case["inputs"])))
        out["value"] = plain(y)
        out["requires_grad"] = bool(isinstance(y, torch.Tensor) and y.requires_grad)
        if case.get("grad") is not None and out["requires_grad"]:
            out["stage"] = "backward"
            (y * case["grad"]).sum().backward()
            out["input_grads"] = [plain(x.grad) for x in flat(inputs)]
            params = dict(module.named_parameters())
            if set(params) == set(case["weight_names"]):
                ordered = [params[n] for n in case["weight_names"]]
            else:
                ordered = list(params.values())
            out["weight_grads"] = [plain(p.grad) for p in ordered]
        out.pop("stage")
        return out
    except Timeout:
        out["error"] = {"type": "Timeout", "message": f"did not return within {case.get('limit', LIMIT_SECONDS):.0f} s",
                        "where": None}
    except LayoutError as err:
        out["error"] = {"type": "LayoutError", "message": str(err), "where": None}
    except BaseException as err:  # noqa: BLE001
        out["error"] = error_text(err)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return out


def get_ipython():  # a notebook cell may call it (a magic); there is no IPython here
    return None


def main() -> None:
    request = torch.load("request.pt", weights_only=True)
    signal.signal(signal.SIGALRM, _alarm)
    torch.set_num_threads(1)
    namespace = {"__name__": "__main__", "get_ipython": get_ipython}
    result = {"cells": {}, "cases": []}
    err = run_source("prelude", request["prelude"], namespace)
    for label, source, names in request.get("given", []):
        err = err or provide(label, source, names, namespace)
    if err:
        raise SystemExit(f"runner: the grader's own code failed: {err}")
    for label, source in request["cells"]:
        result["cells"][label] = run_source(label, _python(source), namespace)
    for label, source, names in request.get("substitutes", []):
        provide(label, source, names, namespace)
    for case in request["cases"]:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = run_case(case, namespace)
        out["warnings"] = sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught})[:5]
        out["seconds"] = round(time.perf_counter() - start, 3)
        result["cases"].append(out)
    torch.save(result, "result.pt.part")
    os.replace("result.pt.part", "result.pt")


def _python(source: str) -> str:
    """A cell's source as Python: IPython's magics (``%time``, ``!ls``) become calls, where IPython is installed."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    return TransformerManager().transform_cell(source)


if __name__ == "__main__":
    main()
