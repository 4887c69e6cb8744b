"""Eager speed for small networks: the module tree flattened into one function of torch ops.

Acting with a 4-120-84-2 MLP runs ~10 ``nn.Module.__call__`` dispatches (hooks, ``__getattr__``)
around 5 tiny kernels; on CPU the dispatch costs as much as the arithmetic. ``torch.fx`` can trace
the network *through* every module into a flat graph of ``F.linear`` / ``relu`` calls on the
module's own parameter objects, which cuts a single-observation forward from 49 to 18 µs for
that MLP here (the action table of ``benchmarks/update_step.py``) without compiling anything.

The flat function reads the same ``nn.Parameter`` objects as the module, so optimizer steps
(including :class:`drlzero.optim.FlatParams`, which swaps ``.data`` but keeps the objects) are
seen at once: there is no stale copy. Modules whose behaviour depends on ``self.training`` or on
per-call randomness (dropout, batch norm, noisy layers) or on data-dependent Python control flow
are not traced; they keep the module call. Every trace is checked against the module on an
example input before it is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

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


class _ThroughTracer(fx.Tracer):
    """Traces into every module, so the graph holds only functions and parameters."""

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
    try:
        fn = _flatten(module)
        with torch.no_grad():
            same = torch.equal(fn(example), module(example))
    except Exception as exc:  # data-dependent control flow etc.: keep the module
        warnings.warn(
            f"flat forward unavailable ({type(exc).__name__}); using the module", stacklevel=2
        )
        return module
    return fn if same else module


def _flatten(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Trace through every module; parameters become extra inputs bound to the live objects.

    Passing parameters as arguments (instead of ``self.encoder.net[1].weight`` lookups through
    ``nn.Module.__getattr__`` in the generated code) is what makes the flat call cheap.
    """
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
    forward = fx.GraphModule(nn.Module(), graph).forward
    bound = tuple(params)

    def call(x: torch.Tensor) -> torch.Tensor:
        return forward(x, *bound)

    return call


def _is_param(module: nn.Module, target: str) -> bool:
    try:
        module.get_parameter(target)
    except AttributeError:
        return False
    return True
