"""The shared harness of the assignment checks: :class:`Submission` runs the student's code, :func:`fail` words
the feedback: the mistake and the fix first (``Fix:``, then ``Where:``, ``Case:``, ``Why:``), in lines of at most
80 characters (``nbgrader validate`` cuts at 87). In Jupyter a :class:`CheckFailed`'s traceback is the message
alone (``_render_traceback_``; the checks' frames are hidden with ``__tracebackhide__``, which pytest honours too).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import textwrap
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["CheckFailed", "Submission", "as_tensor", "call_repr", "close", "conv_is", "convs_of", "fail", "identity_",
           "max_diff", "ok", "param_count", "randomize_", "seeded"]

#: Widest line of a message (``nbgrader validate`` indents by 4 and cuts at 87 characters).
WIDTH = 80
#: Seconds one call of the student's code may take before the check gives up on it (an endless loop).
TIME_LIMIT = 10
_PREFIX = "CheckFailed: "
#: The mistake, fix and why of a forward that changed its input tensor (``Submission.call(..., in_place=...)``).
IN_PLACE_RELU = ("forward changed its input tensor in place (an in-place ReLU on x).",
                 "use the out-of-place F.relu(x) (or nn.ReLU()), not nn.ReLU(inplace=True), F.relu(x, inplace=True), "
                 "F.relu_(x) or x.relu_().",
                 "the caller's tensor is destroyed, and a shortcut that should carry x carries relu(x).")


class CheckFailed(AssertionError):
    """A check found a problem; the message names it, says how to fix it, then why (an ``AssertionError``, so
    that nbgrader marks the test cell as failed)."""

    def _render_traceback_(self) -> list[str]:
        """What IPython (Jupyter, nbgrader's feedback) shows instead of a traceback: the message."""
        lines = str(self).splitlines() or [""]
        return ["\x1b[0;31mCheckFailed\x1b[0m: " + lines[0], *lines[1:]]


def _wrap(text: str, first_offset: int = 0) -> list[str]:
    """``text`` wrapped to :data:`WIDTH` (the first line ``first_offset`` shorter), continuation lines indented
    by two spaces."""
    wrapped = textwrap.wrap(" ".join(text.split()), width=WIDTH, initial_indent=" " * first_offset,
                            subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
    if wrapped:
        wrapped[0] = wrapped[0][first_offset:]
    return wrapped


def fail(what: str, mistake: str, fix: str | None = None, why: str | None = None, *,
         where: str | None = None, case: str | None = None) -> CheckFailed:
    """A :class:`CheckFailed`: ``what: mistake`` first, then ``Fix:``, ``Where:`` (the student's line that
    raised), ``Case:`` (the input the check used) and ``Why:`` lines."""
    lines = _wrap(f"{what}: {mistake}", first_offset=len(_PREFIX))
    for label, text in (("Fix", fix), ("Where", where), ("Case", case), ("Why", why)):
        if text:
            lines += _wrap(f"{label}: {text}")
    return CheckFailed("\n".join(lines))


def ok(message: str) -> None:
    """A passed check prints one line starting with ✓."""
    print(f"✓ {message}")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run with a fixed torch seed, restoring the caller's random state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def call_repr(name: str, args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


def convs_of(module: nn.Module) -> list[nn.Conv2d]:
    """The module's distinct Conv2d layers in registration order (the module itself excluded)."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m is not module]


def conv_is(conv: nn.Conv2d, in_channels: int, out_channels: int, *, bias: bool | None = False) -> bool:
    """Whether ``conv`` is 3x3 from ``in_channels`` to ``out_channels``, stride 1, padding 1, not dilated nor
    grouped, with a bias only when ``bias`` (None: with or without)."""
    return (tuple(conv.weight.shape) == (out_channels, in_channels, 3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and bias in (None, conv.bias is not None))


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_(convs: Sequence[nn.Conv2d], gen: torch.Generator, copies: Iterable[nn.Conv2d] = ()) -> None:
    """Deterministic weights with both signs and ~unit gain, so that variants differ clearly; each of ``copies``
    (the reference's convolutions, in the same order) gets the same weight (and bias, where both have one)."""
    with torch.no_grad():
        for c in convs:
            fan_in = c.weight[0].numel()
            c.weight.copy_(torch.randn(c.weight.shape, generator=gen) * (1.5 / math.sqrt(fan_in)))
            if c.bias is not None:
                c.bias.copy_(torch.randn(c.bias.shape, generator=gen) * 0.5)
        for source, target in zip(convs, copies):
            target.weight.copy_(source.weight)
            if source.bias is not None and target.bias is not None:
                target.bias.copy_(source.bias)


def identity_(conv: nn.Conv2d) -> None:
    """Make a square conv the identity map (a centred delta kernel, zero bias)."""
    with torch.no_grad():
        conv.weight.zero_()
        kh, kw = conv.weight.shape[-2] // 2, conv.weight.shape[-1] // 2
        for c in range(min(conv.out_channels, conv.in_channels)):
            conv.weight[c, c, kh, kw] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()


def close(a: Any, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    return (isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype.is_floating_point
            and bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol)))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def as_tensor(value: Any, what: str) -> torch.Tensor:
    __tracebackhide__ = True
    try:
        return torch.as_tensor(value)
    except Exception as err:  # noqa: BLE001
        raise fail(what, f"returned a {type(value).__name__}, which is not a tensor of numbers.",
                   "return a torch tensor.") from err


_LIBRARY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP_DIRS = tuple({os.path.dirname(os.__file__), os.path.dirname(torch.__file__), _LIBRARY_DIR})


def student_line(err: BaseException) -> str | None:
    """The ``Where:`` of a failure: the deepest frame of ``err``'s traceback that is the student's own code (a
    notebook cell as IPython names it, ``Cell In[5], line 3``)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not os.path.abspath(f.filename).startswith(_SKIP_DIRS) and "site-packages" not in f.filename]
    if not frames:
        return None
    f = frames[-1]
    try:
        cell = get_ipython().compile.format_code_name(f.filename)  # type: ignore[name-defined]  # noqa: F821
    except Exception:  # noqa: BLE001 - not in IPython
        cell = None
    place = f"{cell[0]} {cell[1]}" if cell else os.path.basename(f.filename)
    where = f"{place}, line {f.lineno}, in {f.name}"
    code = (f.line or "").strip()
    return where + (f": {code}" if code and len(f"Where: {where}: {code}") <= WIDTH else "")


def _error_text(err: BaseException) -> str:
    text = " ".join(str(err).split()).rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _integer_arithmetic(err: BaseException) -> tuple[str, str] | None:
    """The mistake and fix when ``err`` is torch refusing integer tensors (mean, nanmean) or an integer
    division by zero, else None."""
    text = str(err)
    integer = any(f"Got: {t}" in text or f"got {t}" in text for t in ("Long", "Int", "Short", "Byte"))
    if isinstance(err, ZeroDivisionError) or isinstance(err, RuntimeError) and (
            "ZeroDivisionError" in text or "dtype" in text and integer):
        return (": integer arithmetic. Counts are integer tensors (int64); `//` rounds down (and fails on 0), and "
                "mean() refuses integers.", "convert the counts to floating point before dividing or averaging, e.g. "
                "`counts = counts.double()`, and divide with `/`.")
    return None


def _shapes(t: Any) -> str:
    if isinstance(t, torch.Tensor):
        return str(list(t.shape))
    if isinstance(t, (list, tuple)) and all(isinstance(x, torch.Tensor) for x in t):
        return "[" + ", ".join(str(list(x.shape)) for x in t) + "]"
    return type(t).__name__


class Submission:
    """The student's class or function under a check, named ``what`` (its own name, else its type's); ``usage``
    is the call of the check that a fix names when it was given something else (``check_rcu(ResidualConvUnit)``).

    ``reference``: the library code the check compares with (everything defined in its modules counts), which
    the student's code must not derive from, hold or call, but for the classes in ``allowed`` that the task
    gives (the 4-cascade's ``RefineNetBlock``). Calls into the reference's modules are recorded with
    ``sys.setprofile`` while the student's code runs. With ``allow_reference=True`` the reference itself is
    accepted (the notebooks show it passing); the graded assignments pass ``False``, so that
    ``ResidualConvUnit = refinenet_edu.ResidualConvUnit`` fails as well.
    """

    def __init__(self, obj: Any, usage: str, reference: tuple[Any, ...], *, allowed: tuple[type, ...] = (),
                 allow_reference: bool = True):
        self.obj, self.reference, self.allowed, self.usage = obj, reference, allowed, usage
        self.what = getattr(obj, "__name__", None) or type(obj).__name__
        self.is_reference = allow_reference and any(obj is o for o in reference)
        self.built: list[nn.Module] = []  # every module built from the student's class, for refuse_reuse
        self.called: dict[str, None] = {}  # the qualified names of the reference code called, in order
        self.warned: set[str] = set()  # the warnings already noted
        self._modules = {o.__module__ for o in reference}
        paths = {getattr(sys.modules.get(name), "__file__", None) for name in self._modules} - {None}
        self._files = paths | {os.path.realpath(p) for p in paths}

    def _owns(self, obj: Any) -> bool:
        """Whether ``obj`` (a class or a function) is library reference code and not an allowed class."""
        if isinstance(obj, type) and issubclass(obj, self.allowed):
            return False
        return getattr(obj, "__module__", None) in self._modules

    @contextlib.contextmanager
    def _running(self, call: str) -> Iterator[None]:
        """Run the student's ``call``: record every call into the reference's modules, give up after
        :data:`TIME_LIMIT` seconds (POSIX, main thread), and turn the warnings it gives into one note on standard
        output (a warning is no mistake, and nbgrader counts anything on standard error as a failed cell)."""
        files, called, allowed = self._files, self.called, self.allowed

        def profile(frame, event, arg):
            if event == "call" and frame.f_code.co_filename in files:
                if allowed and isinstance(_owner(frame), allowed):
                    return
                called[getattr(frame.f_code, "co_qualname", frame.f_code.co_name)] = None

        def stop(signum, frame):
            raise fail(self.what, f"{call} did not return within {TIME_LIMIT} s.",
                       "look for a loop that never ends (a `while` whose condition never changes).")

        previous_profile = sys.getprofile()
        if files and not self.is_reference:
            sys.setprofile(profile)
        timed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        if timed:
            previous_handler = signal.signal(signal.SIGALRM, stop)
            signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_handler)
            sys.setprofile(previous_profile)
            for text in sorted({f"{w.category.__name__}: {w.message}" for w in caught} - self.warned)[:3]:
                self.warned.add(text)
                print(f"Note: your code warned (no points lost): {text}")

    def build(self, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> nn.Module:
        """Instantiate the student's class; NotImplementedError passes through."""
        __tracebackhide__ = True
        what, factory, kwargs = self.what, self.obj, kwargs or {}
        if isinstance(factory, nn.Module):
            raise fail(what, "you passed an instance (an already built module), not the class.",
                       f"pass the class itself: {self.usage}")
        if not callable(factory):
            raise fail(what, f"expected a class, got a {type(factory).__name__}.", f"call it as {self.usage}")
        call = call_repr(getattr(factory, "__name__", what), args, kwargs)
        try:
            with self._running(call):
                module = factory(*args, **kwargs)
        except (NotImplementedError, CheckFailed):
            raise
        except Exception as err:
            raise fail(what, f"{call} raised {_error_text(err)}",
                       "check the constructor's arguments (see the task), and that __init__ calls "
                       "super().__init__() before it assigns any layer.", where=student_line(err)) from err
        if not isinstance(module, nn.Module):
            raise fail(what, f"{call} returned a {type(module).__name__}, not a torch.nn.Module.",
                       "make your class a subclass of nn.Module.")
        self.built.append(module)
        return module

    def call(self, fn: Callable, *inputs: Any, context: str = "", fix: str | None = None,
             shape: Sequence[int] | None = None, explain: Callable = _integer_arithmetic,
             in_place: Sequence[str] = ()) -> Any:
        """Call the student's ``fn`` (a module or a function); NotImplementedError passes through.

        ``shape``: the output must be one tensor (of this shape, the message says). ``explain(err)``: the
        mistake (appended to "raised ...") and the fix an exception stands for, or None. ``in_place``: the
        mistake and fix (and why) to name when ``fn`` changes a tensor it was given (e.g. :data:`IN_PLACE_RELU`).
        """
        __tracebackhide__ = True
        if not callable(fn):
            raise fail(self.what, f"expected a function, got a {type(fn).__name__}.",
                       f"pass your function itself: {self.usage}.")
        given = [x for x in inputs if isinstance(x, torch.Tensor)]
        before = [x.clone() for x in given] if in_place else []
        try:
            with self._running(f"{self.what}'s forward()" if isinstance(fn, nn.Module) else self.what):
                out = fn(*inputs)
        except (NotImplementedError, CheckFailed):
            raise
        except Exception as err:
            where, known = student_line(err), explain(err)
            if known:
                raise fail(self.what, f"raised {_error_text(err)}{context}{known[0]}", known[1], where=where) from err
            shapes = ", ".join(_shapes(t) for t in inputs)
            raise fail(self.what, f"raised {_error_text(err)} on input(s) {shapes}{context}.",
                       fix or "compare the shapes in your code with the task's formula"
                       + (" at the line below." if where else "."), where=where) from err
        if any(not torch.equal(x, b) for x, b in zip(given, before)):
            raise fail(self.what, *in_place)
        return out if shape is None else self.one_tensor(out, shape)

    def one_tensor(self, out: Any, shape: Sequence[int]) -> torch.Tensor:
        """``out`` when it is one tensor (or a tuple or list of one), else a failure that expects ``shape``."""
        __tracebackhide__ = True
        if isinstance(out, (tuple, list)) and len(out) == 1 and isinstance(out[0], torch.Tensor):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise fail(self.what, f"forward returned a {type(out).__name__}, expected one tensor of shape "
                       f"{list(shape)}.", "return the output tensor (did you forget the `return`?).")
        return out

    def call_keeping_shape(self, module: nn.Module, x: torch.Tensor, *, fix: str) -> torch.Tensor:
        """Call the student's ``module`` on ``x``, which must stay as it was, and return its output, which must
        have ``x``'s shape (an RCU, a CRP); ``fix`` says how to keep the shape."""
        __tracebackhide__ = True
        y = self.call(module, x, shape=x.shape, in_place=IN_PLACE_RELU)
        if y.shape != x.shape:
            raise fail(self.what, f"the output has shape {list(y.shape)}, the input {list(x.shape)}.", fix)
        return y

    def named_mistake(self, got: Any, mistakes: Iterable[tuple], *, same: Callable = close, fix: str | None = None,
                      why: str | None = None, case: str | None = None) -> None:
        """Raise the first of ``mistakes`` (``(value, mistake)``, optionally followed by its own fix and why)
        whose value ``got`` matches. A value may be a function, computed only when reached (without gradients)
        and skipped when that mistake cannot even run on the check's inputs."""
        __tracebackhide__ = True
        for value, mistake, *text in mistakes:
            if callable(value):
                try:
                    with torch.no_grad():
                        value = value()
                except Exception:  # noqa: BLE001
                    continue
            if same(got, value):
                own_fix, own_why = [*text, None, None][:2]
                raise fail(self.what, mistake, own_fix or fix, own_why or why, case=case)

    def check_gradients(self, module: nn.Module, inputs: Sequence[torch.Tensor], names: Sequence[str],
                        run: Callable | None = None) -> None:
        """Backpropagate a fixed weighting of the output of ``run(inputs)`` (default: ``module(*inputs)``) from
        copies of ``inputs``; every input and every parameter of ``module`` must get a gradient."""
        __tracebackhide__ = True
        what = self.what
        inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
        module.zero_grad(set_to_none=True)
        output = run(inputs) if run else self.call(module, *inputs)
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            raise fail(what, "the output does not require a gradient: nothing can be trained through it.",
                       "do not use torch.no_grad(), .detach(), .data or numpy inside forward.")
        weight = torch.randn(output.shape, generator=torch.Generator().manual_seed(1234))
        (output * weight).sum().backward()
        for name, x in zip(names, inputs):
            if x.grad is None or not bool(x.grad.abs().sum() > 0):
                raise fail(what, f"no gradient reaches {name}.",
                           "do not .detach() it, wrap it in torch.no_grad(), use .data, or leave it out of the sum.")
        for pname, p in module.named_parameters():
            if p.grad is None:
                raise fail(what, f"parameter {pname!r} gets no gradient: forward does not use it.",
                           "use every layer you create in __init__ in forward (or do not create it).")
            if not bool(torch.isfinite(p.grad).all()):
                raise fail(what, f"parameter {pname!r} gets a non-finite gradient.",
                           "look for a division by zero or a log of zero in forward.")

    def _reuse(self) -> str | None:
        """How the student's code uses the reference, or None."""
        obj = self.obj
        if self.is_reference:
            return None
        if any(obj is o for o in self.reference) or (not isinstance(obj, type) and self._owns(obj)):
            name = getattr(obj, "__qualname__", type(obj).__qualname__)
            return f"it is refinenet_edu's {name} itself, imported from the library"
        if isinstance(obj, type):
            for base in obj.__mro__[1:]:
                if self._owns(base):
                    return f"class {obj.__name__} derives from refinenet_edu's {base.__qualname__}"
        for module in self.built:
            for name, sub in module.named_modules():
                if self._owns(type(sub)) and not (sub is module and isinstance(obj, type)):
                    where = f"self.{name}" if name else "what it returns"
                    return f"it holds refinenet_edu's {type(sub).__qualname__} ({where})"
        if self.called:
            names = [n for n in self.called if "<" not in n] or list(self.called)
            return f"it calls the library's reference code ({', '.join(names[:3])})"
        return None

    def refuse_reuse(self, *, fix: str) -> None:
        """Raise if the student's code derives from, holds (in any module built) or called the reference."""
        __tracebackhide__ = True
        found = self._reuse()
        if found:
            raise fail(self.what, f"{found}, the reference this check compares your code with.", fix,
                       "reusing the reference matches it by construction, so nothing you wrote would be tested.")


def _owner(frame) -> Any:
    """The ``self`` a frame runs for; a generator expression, comprehension or lambda (``<genexpr>``) runs for
    the ``self`` of the method that made it (``MultiResolutionFusion.forward``'s generator is fusion's code)."""
    for _ in range(4):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if owner is not None or not frame.f_code.co_name.startswith("<"):
            return owner
        frame = frame.f_back
    return None
