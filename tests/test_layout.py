"""The layout rule of docs/architecture.md, read from the source with ``ast`` (nothing imported):
networks live in ``nets/`` and never import ``algos``; ``algos/`` is the math and defines no
``nn.Module``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "drlzero"


def _imported_modules(tree: ast.AST, package: str) -> list[str]:
    """Every module an ``import`` or ``from ... import`` names, anywhere in the file (function
    bodies too), relative imports resolved against ``package`` (e.g. ``drlzero.nets``)."""
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            out.append(mod)
            # ``from drlzero import algos`` names the package through the imported name
            out += [f"{mod}.{a.name}" for a in node.names]
    return out


def _is_module_base(base: ast.expr) -> bool:
    """``nn.Module``, ``torch.nn.Module`` or a bare ``Module``."""
    if isinstance(base, ast.Attribute):
        return base.attr == "Module"
    return isinstance(base, ast.Name) and base.id == "Module"


def test_the_helpers_read_what_they_should() -> None:
    tree = ast.parse(
        "import drlzero.algos.ppo\nfrom ..algos import ppo\n"
        "def f():\n    from drlzero import algos\n"
        "class A(nn.Module): ...\nclass B(torch.nn.Module): ...\nclass C(Protocol): ..."
    )
    mods = _imported_modules(tree, "drlzero.nets")
    assert "drlzero.algos.ppo" in mods and "drlzero.algos" in mods
    assert "drlzero.algos.ppo" in _imported_modules(
        ast.parse("from ..algos import ppo"), "drlzero.nets"
    )
    bases = [_is_module_base(n.bases[0]) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    assert bases == [True, True, False]


@pytest.mark.parametrize("path", sorted((SRC / "nets").glob("*.py")), ids=lambda p: p.name)
def test_nets_never_import_algos(path: Path) -> None:
    mods = _imported_modules(ast.parse(path.read_text()), "drlzero.nets")
    bad = [m for m in mods if m == "drlzero.algos" or m.startswith("drlzero.algos.")]
    assert not bad, f"nets/{path.name} imports {bad}: networks must not depend on algorithms"


@pytest.mark.parametrize("path", sorted((SRC / "algos").glob("*.py")), ids=lambda p: p.name)
def test_algos_define_no_networks(path: Path) -> None:
    tree = ast.parse(path.read_text())
    modules = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any(_is_module_base(b) for b in node.bases)
    }
    assert not modules, f"algos/{path.name} defines nn.Modules {modules}: move to nets/"


def test_moved_networks_stay_importable_from_algos() -> None:
    """The old import paths name the very objects that live in nets/."""
    from drlzero.algos import distill, lm_policy, ppo, sac
    from drlzero.nets import actor_critic, distributions, lm, multitask
    from drlzero.nets import sac as nets_sac

    for old, new, names in [
        (ppo, actor_critic, ["ActorCritic", "build_actor_critic", "space_kind"]),
        (ppo, distributions, ["ActionDist"]),
        (
            sac,
            nets_sac,
            ["TanhGaussianActor", "ContinuousQ", "TwinQ", "build_actor", "build_critic"],
        ),
        (sac, distributions, ["tanh_gaussian_log_prob", "tanh_log_det_jacobian"]),
        (
            lm_policy,
            lm,
            ["LMActorCritic", "PromptCodec", "adapt_lm", "count_params", "build_lm_actor_critic"],
        ),
        (lm_policy, lm, ["action_loglik", "naive_action_loglik", "normalized_scores"]),
        (distill, multitask, ["MultiTaskStudent"]),
    ]:
        for name in names:
            assert getattr(old, name) is getattr(new, name), name
            assert getattr(new, name).__module__ == new.__name__, name
