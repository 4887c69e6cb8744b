"""Eager speed for small networks: the module tree flattened into one function of torch ops.

Acting with a 4-120-84-2 MLP runs ~10 ``nn.Module.__call__`` dispatches (hooks, ``__getattr__``)
around 5 tiny kernels; on CPU the dispatch costs as much as the arithmetic. ``torch.fx`` can trace
the network *through* every module into a flat graph of ``F.linear`` / ``relu`` calls on the
module's own parameter objects, which cuts a single-observation forward from 49 to 18 µs for
that MLP here (the action table of ``benchmarks/update_step.py``) without compiling anything.

The flat function reads the same ``nn.Parameter`` objects as the module, so optimizer steps
(including :class:`drlzero.accel.flat.FlatParams`, which swaps ``.data`` but keeps the
objects) are seen at once: there is no stale copy. Buffers are inputs too (read live), so the
noise buffers of noisy layers, resampled in place, are seen as well; a network with noisy
layers gets one trace per mode (``train()`` / ``eval()``), chosen at each call by the noisy
layers' own ``training`` flag. Modules with other per-call randomness or running statistics
(dropout, batch norm) or with data-dependent Python control flow are not traced; they keep the
module call. Every trace is checked against the module on an example input (in each mode)
before it is used.

:func:`numpy_forward` goes one step further for acting on CPU: an MLP's trace (linear, ReLU,
Tanh, add, sub, mean, flatten) evaluated with NumPy on views of the live parameters. Acting on
one NumPy observation with the 120-84 CleanRL network costs 15 µs that way against 31 µs through
the flat torch forward (19 µs for the forward itself, the rest ``from_numpy``,
``inference_mode`` and ``.numpy()``) and 52 µs through the module (median of 7 interleaved
repeats, quiet machine).
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx, nn

# Modules whose forward is a pure function of input and parameters, safe to trace through.
_PURE = (
    nn.Sequential,
    nn.Linear,
    nn.Conv2d,
    nn.ReLU,
    nn.Tanh,
    nn.GELU,
    nn.Flatten,
    nn.Identity,
)


def _mode_dependent(m: nn.Module) -> bool:
    """Layers whose forward branches on ``self.training`` but are otherwise pure functions of
    input, parameters and buffers (the noise of a noisy layer is a buffer, reset in place)."""
    from drlzero.nets.noisy import NoisyLinear

    return isinstance(m, NoisyLinear)


class _ThroughTracer(fx.Tracer):
    """Traces into every module, so the graph holds only functions, parameters and buffers
    (buffer reads stay reads: computed from at each call, never folded into constants)."""

    proxy_buffer_attributes = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return False


def _traceable(module: nn.Module) -> bool:
    """Whether every submodule is a plain container or one of the pure layers.

    Containers of our own (encoders, heads, ``QNetwork``) qualify only through their children:
    any other library module (dropout, norms, noisy layers, Hugging Face models) rules it out.
    """
    for m in module.modules():
        if isinstance(m, _PURE):
            continue
        if _mode_dependent(m):
            continue
        if type(m).__module__.startswith("drlzero.") and not _stateful(m):
            continue
        return False
    return True


def _stateful(m: nn.Module) -> bool:
    """drlzero modules that sample noise or cache state per call are not pure."""
    return hasattr(m, "reset_noise") or hasattr(m, "preprocess")


def flat_forward(
    module: nn.Module, example: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module``'s forward as one flat function when that is safe and exact, else ``module``.

    Args:
        module: the network (e.g. a ``QNetwork``).
        example: one input batch, used to check the traced function against the module.

    Returns:
        A callable with the module's forward semantics.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> fwd = flat_forward(net, torch.zeros(1, 4))
        >>> fwd(torch.ones(3, 4)).shape
        torch.Size([3, 2])
    """
    if not _traceable(module):
        return module
    if not any(_mode_dependent(m) for m in module.modules()):
        return _checked_trace(module, example) or module
    mode = module.training
    try:
        traces = {}
        for training in (True, False):
            module.train(training)
            traces[training] = _checked_trace(module, example)
    finally:
        module.train(mode)
    fn_train, fn_eval = traces[True], traces[False]
    if fn_train is None or fn_eval is None:
        return module
    # the mode of the layers themselves (``module`` may be a wrapper that train()/eval() of
    # the wrapped network does not reach)
    probe = next(m for m in module.modules() if _mode_dependent(m))

    def by_mode(x: torch.Tensor) -> torch.Tensor:
        return fn_train(x) if probe.training else fn_eval(x)

    return by_mode


def _checked_trace(
    module: nn.Module, example: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The flat trace in ``module``'s current mode if it equals the module on ``example``."""
    try:
        fn = _flatten(module)
        with torch.no_grad():
            same = torch.equal(fn(example), module(example))
    except Exception as exc:  # data-dependent control flow etc.: keep the module
        warnings.warn(
            f"flat forward unavailable ({type(exc).__name__}); using the module", stacklevel=2
        )
        return None
    return fn if same else None


def _flatten(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Trace through every module; parameters become extra inputs bound to the live objects.

    Passing parameters as arguments (instead of ``self.encoder.net[1].weight`` lookups through
    ``nn.Module.__getattr__`` in the generated code) is what makes the flat call cheap.
    """
    graph, params = _trace_with_inputs(module)
    forward = fx.GraphModule(nn.Module(), graph).forward
    bound = tuple(params)

    def call(x: torch.Tensor) -> torch.Tensor:
        return forward(x, *bound)

    return call


def _trace_with_inputs(module: nn.Module) -> tuple[fx.Graph, list[torch.Tensor]]:
    """The through-trace of ``module`` with every parameter and buffer turned into an input
    (after the observation), and the live tensors to pass for them."""
    graph = _ThroughTracer().trace(module)
    params: list[torch.Tensor] = []
    last_input = [n for n in graph.nodes if n.op == "placeholder"][-1]
    for node in list(graph.nodes):
        if node.op == "get_attr":
            target = str(node.target)
            params.append(
                module.get_parameter(target)
                if _is_param(module, target)
                else module.get_buffer(target)
            )
            with graph.inserting_after(last_input):
                arg = graph.placeholder(f"p{len(params) - 1}")
            last_input = arg
            node.replace_all_uses_with(arg)
            graph.erase_node(node)
        elif node.op == "call_function" and node.target is torch.nn.functional.relu:
            node.target = torch.relu  # skips F.relu's torch-function and inplace checks
            node.kwargs = {}
    graph.lint()
    return graph, params


def _is_param(module: nn.Module, target: str) -> bool:
    try:
        module.get_parameter(target)
    except AttributeError:
        return False
    return True


# -- NumPy acting for small MLPs ----------------------------------------------------------------
def _np_linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = x @ w.T
    if b is not None:
        y += b
    return y


def _np_relu(x: np.ndarray, inplace: bool = False) -> np.ndarray:
    return np.maximum(x, 0.0)  # never in place: x may be the caller's observation


def _np_mean(x: np.ndarray, dim: int | None = None, keepdim: bool = False) -> np.ndarray:
    return x.mean(axis=dim, keepdims=keepdim)


def _np_flatten(x: np.ndarray, start_dim: int = 0, end_dim: int = -1) -> np.ndarray:
    end = end_dim % x.ndim
    return x.reshape(*x.shape[:start_dim], -1, *x.shape[end + 1 :])


_NP_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    torch._C._nn.linear: _np_linear,
    torch.nn.functional.linear: _np_linear,
    torch.relu: _np_relu,
    torch.nn.functional.relu: _np_relu,
    torch.tanh: np.tanh,
    operator.add: operator.add,
    operator.sub: operator.sub,
}


def _np_float(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.float32, copy=False)


_NP_METHODS: dict[str, Callable[..., Any]] = {
    "float": _np_float,
    "flatten": _np_flatten,
    "mean": _np_mean,
}


class NumpyForward:
    """``module``'s trace run with NumPy on views of its live parameters (CPU, float32).

    The trace's torch calls are swapped for NumPy functions and fx generates the Python code,
    so a call runs as straight-line NumPy. The views share memory with the parameters, so
    optimizer steps are seen at once; if a parameter's storage is replaced (``p.data = ...``),
    the views are rebuilt on the next call (one ``data_ptr`` comparison per tensor and call
    guards this).
    """

    def __init__(self, graph: fx.Graph, params: list[torch.Tensor]) -> None:
        for node in graph.nodes:
            if node.op == "call_function" and node.target in _NP_FUNCTIONS:
                node.target = _NP_FUNCTIONS[node.target]
            elif node.op == "call_method" and node.target in _NP_METHODS:
                node.op, node.target = "call_function", _NP_METHODS[str(node.target)]
            elif node.op not in ("placeholder", "output"):
                raise NotImplementedError(f"{node.op} {node.target}")
        self._forward = fx.GraphModule(nn.Module(), graph).forward
        self.params = params
        self._refresh()

    def _refresh(self) -> None:
        self._ptrs = [p.data_ptr() for p in self.params]
        self._views = [p.detach().numpy() for p in self.params]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for p, ptr in zip(self.params, self._ptrs, strict=True):
            if p.data_ptr() != ptr:
                self._refresh()
                break
        return self._forward(x, *self._views)


def numpy_forward(
    module: nn.Module, example: np.ndarray
) -> Callable[[np.ndarray], np.ndarray] | None:
    """A NumPy version of ``module``'s forward for acting on CPU, or None where there is none.

    Only float32 CPU networks built from linear layers, ReLU/Tanh, flatten and the dueling
    combination qualify (MLP encoders with linear or dueling heads); convolutions, noisy or
    distributional heads keep the torch path. The result is checked against the module on
    ``example`` (float32 matmuls in NumPy and torch may round differently: tolerance 1e-5).
    """
    if not _traceable(module) or any(_mode_dependent(m) for m in module.modules()):
        return None
    tensors = [*module.parameters(), *module.buffers()]
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return None
    try:
        graph, params = _trace_with_inputs(module)
        fn = NumpyForward(graph, params)
        got = fn(np.ascontiguousarray(example))
        with torch.no_grad():
            want = module(torch.from_numpy(np.asarray(example))).numpy()
    except Exception:  # an op NumPy does not cover here: keep torch
        return None
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-5):
        return None
    return fn
