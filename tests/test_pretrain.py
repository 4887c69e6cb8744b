"""Self-supervised pretraining (issue 7): observation tokenizers, the dataset reader, each
objective's loss falling, saved encoders reloading with identical features (through AutoModel
and through the ``pretrained`` encoder), the CLI end to end, and one-line errors.

Needs transformers and peft (the ``drlzero[lm]`` extra); skipped without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from drlzero.cli import main
from drlzero.config import EnvConfig, load_config
from drlzero.data.dataset import FORMAT, FORMAT_VERSION
from drlzero.encoders import build_encoder
from drlzero.encoders.pretrained import PretrainedEncoder
from drlzero.errors import ConfigError, UserError
from drlzero.nets import make_target
from drlzero.nets.heads import LinearHead, QNetwork
from drlzero.pretrain.dataset import PretrainRows, generate_dataset
from drlzero.pretrain.objectives import info_nce, mask_tokens
from drlzero.pretrain.obs_tokenizer import BASE, CLS, MASK, ObsTokenizer
from drlzero.pretrain.trainer import PretrainConfig, PretrainModel, pretrain, save_encoder

TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 32, "bins": 16}
CB = "drlzero/CatchBall-v0"


@pytest.fixture(scope="module")
def cb_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(
        EnvConfig(id=CB), tmp_path_factory.mktemp("cb") / "data", steps=400, seed=0
    )


@pytest.fixture(scope="module")
def cb_model(cb_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cb") / "model"
    pretrain(cb_data, out, PretrainConfig(steps=5, **TINY))
    return out


def _write_grid_dataset(folder: Path, n: int = 60, shape: tuple = (4, 10, 10)) -> Path:
    """A hand-written one-shard dataset in docs/data.md's format: MinAtar-like 0/1 grids, 3
    episodes of 19 steps (20 observations each). Returns the folder; ``actions.npy`` at its top
    holds the per-row actions the reader should build (-1 on each episode's last row)."""
    rng = np.random.default_rng(0)
    shard = folder / "shard-00000"
    shard.mkdir(parents=True)
    steps = n - n // 20  # one observation per episode more than steps
    row_actions = rng.integers(0, 3, n)
    row_actions[19::20] = -1  # each episode's final row
    arrays = {
        "obs": rng.random((n, *shape)) < 0.1,
        "actions": row_actions[row_actions >= 0],
        "rewards": np.zeros(steps, np.float32),
        "terminated": np.zeros(steps, bool),
        "truncated": (np.arange(steps) % 19) == 18,
        "episode_ids": np.arange(steps) // 19,
        "episode_starts": np.arange(0, steps + 1, 19),
    }
    for name, arr in arrays.items():
        np.save(shard / f"{name}.npy", arr, allow_pickle=False)
    np.save(folder / "actions.npy", row_actions, allow_pickle=False)
    np.save(folder / "obs.npy", arrays["obs"], allow_pickle=False)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "env": {"id": "hand-written", "kwargs": {}},
        "action_space": {"type": "Discrete", "n": 3},
        "num_episodes": n // 20,
        "num_steps": steps,
        "shards": [{"dir": "shard-00000", "steps": steps, "episodes": n // 20}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# -- observation tokenizers --------------------------------------------------------------------


def test_vector_tokenizer_bins_and_clips() -> None:
    tok = ObsTokenizer.vector([0.0, -1.0], [1.0, 1.0], bins=4)
    ids = tok.encode(np.array([[0.0, -1.0], [0.99, 0.99], [5.0, -7.0]], np.float32))
    # feature f, bin b -> BASE + 4 f + b; out-of-range values clip to the end bins.
    assert ids.tolist() == [
        [CLS, BASE, BASE + 4],
        [CLS, BASE + 3, BASE + 7],
        [CLS, BASE + 3, BASE + 4],
    ]
    assert tok.vocab_size == BASE + 8 and tok.length == 3 and ids.dtype == np.int32


def test_grid_tokenizer_encodes_the_set_of_objects_per_cell(tmp_path: Path) -> None:
    tok = ObsTokenizer.grid((3, 2, 2))
    obs = np.zeros((1, 3, 2, 2), bool)
    obs[0, 0, 0, 1] = obs[0, 2, 0, 1] = True  # channels 0 and 2 in cell (0, 1)
    assert tok.encode(obs).tolist() == [[CLS, BASE, BASE + 5, BASE, BASE]]
    tok.save(tmp_path)
    assert ObsTokenizer.load(tmp_path) == tok


# -- the dataset reader ------------------------------------------------------------------------


def test_batches_never_cross_episodes(tmp_path: Path) -> None:
    ds = PretrainRows(_write_grid_dataset(tmp_path / "g"))
    assert len(ds) == 57  # 3 episodes of 20 rows: 19 transitions each
    obs = np.load(tmp_path / "g" / "obs.npy")
    actions = np.load(tmp_path / "g" / "actions.npy")
    row_of = {o.tobytes(): i for i, o in enumerate(obs)}
    assert len(row_of) == len(obs)  # random grids: every row is identified by its observation
    ks: list[int] = []
    for batch_i, batch in enumerate(ds.iter_batches(64, k_max=30, seed=1)):
        assert batch.obs_t.shape == (64, 4, 10, 10) and batch.action_t.shape == (64,)
        for b in range(64):
            t = row_of[batch.obs_t[b].tobytes()]
            nxt = row_of[batch.obs_next[b].tobytes()]
            fut = row_of[batch.obs_future[b].tobytes()]
            # s_t is never an episode's last row, a_t is the action stored with it, s_{t+1} is
            # the next row and s_{t+k} a later row of the same episode, k <= k_max.
            assert t % 20 != 19 and batch.action_t[b] == actions[t] >= 0
            assert nxt == t + 1
            assert fut // 20 == t // 20 and t < fut <= t + 30
            ks.append(fut - t)
        if batch_i == 3:
            break
    # k is drawn from 1..30 and clipped at the episode's end: both short and clipped ones occur
    assert min(ks) == 1 and max(ks) <= 19 and len(set(ks)) > 10


def test_generated_dataset_layout(cb_data: Path) -> None:
    """generate_dataset writes a `drlzero collect` dataset; the reader's rows end every
    episode with action -1."""
    manifest = json.loads((cb_data / "manifest.json").read_text())
    assert manifest["format"] == FORMAT and manifest["action_space"]["n"] == 3
    ds = PretrainRows(cb_data)
    assert ds.num_actions == 3 and ds.obs.shape[1:] == (6,)
    assert len(ds.obs) == manifest["num_steps"] + manifest["num_episodes"]
    assert (ds.actions == -1).sum() == manifest["num_episodes"]


# -- objectives --------------------------------------------------------------------------------


def test_mask_tokens_masks_at_least_one_observation_token_never_cls() -> None:
    ids = torch.full((50, 7), 5)
    ids[:, 0] = CLS
    masked, where = mask_tokens(ids, 0.01, MASK, torch.Generator().manual_seed(0))
    assert where.sum(1).min() >= 1 and not where[:, 0].any()
    assert (masked[where] == MASK).all() and (masked[~where] == ids[~where]).all()


def test_info_nce_by_hand() -> None:
    z = torch.eye(4)
    # Identical pairs, orthogonal negatives: CE of logits [10, 0, 0, 0] = log(1 + 3 e^-10).
    assert info_nce(z, z, 0.1).item() == pytest.approx(np.log(1 + 3 * np.exp(-10)), abs=1e-6)
    assert info_nce(torch.ones(4, 2), torch.ones(4, 2), 0.1).item() == pytest.approx(np.log(4))


@pytest.mark.parametrize("objective", ["mask", "inverse", "contrastive"])
def test_each_objective_loss_falls(cb_data: Path, tmp_path: Path, objective: str) -> None:
    cfg = PretrainConfig(objectives=[objective], steps=100, lr=2e-3, dropout=0.0, **TINY)
    summary = pretrain(cb_data, tmp_path / objective, cfg)
    first, last = summary["loss_first"][objective], summary["loss_last"][objective]
    assert last < 0.9 * first, summary


# -- saved encoders ----------------------------------------------------------------------------


def test_saved_encoder_reloads_with_identical_features(tmp_path: Path) -> None:
    from transformers import AutoModel

    tok = ObsTokenizer.vector(np.zeros(6), np.ones(6), bins=16)
    torch.manual_seed(0)
    model = PretrainModel(tok, PretrainConfig(**TINY), num_actions=3)
    folder = save_encoder(model, tok, tmp_path / "m")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    obs = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    ids = torch.from_numpy(tok.encode(obs))
    with torch.no_grad():
        want_BLH = model.hidden(ids)
        hf = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        torch.testing.assert_close(hf(input_ids=ids.long()).last_hidden_state, want_BLH)
        enc = PretrainedEncoder((6,), model_path=str(folder), mode="full", pooling="cls")
        ids_np = enc.preprocess(obs)  # raw observations -> ids at the env boundary
        assert ids_np.dtype == np.int32 and enc.stored_shape == (tok.length,)
        torch.testing.assert_close(enc.embed(torch.from_numpy(ids_np)), want_BLH[:, 0])
        frozen = PretrainedEncoder((6,), model_path=str(folder), mode="frozen", pooling="cls")
        cached = frozen.preprocess(obs)  # frozen: embeddings cached by token content
        assert cached.shape == (5, 32) and frozen.preprocess(obs[:2]).shape == (2, 32)
        assert frozen.cache is not None and frozen.cache.hits == 2
        np.testing.assert_allclose(cached, want_BLH[:, 0].numpy(), rtol=1e-5, atol=1e-5)


def test_grid_model_through_lora_with_shared_target(tmp_path: Path) -> None:
    data = _write_grid_dataset(tmp_path / "g")
    pretrain(data, tmp_path / "m", PretrainConfig(steps=2, **TINY))
    cfg = load_config(None, overrides=["encoder.name=pretrained", "encoder.mode=lora"]).encoder
    cfg.model_path = str(tmp_path / "m")
    import gymnasium as gym

    space = gym.spaces.Box(0, 1, (4, 10, 10), bool)
    enc = build_encoder(cfg, space)
    q = QNetwork(enc, LinearHead(enc.features_dim, 3))
    target = make_target(q)
    base = enc.backbone.embeddings.word_embeddings.weight
    assert target.encoder.backbone.embeddings.word_embeddings.weight is base  # shared
    ids = torch.from_numpy(enc.preprocess(np.zeros((2, 4, 10, 10), bool)))
    assert ids.shape == (2, 101) and q(ids).shape == (2, 3)


def test_observation_shape_mismatch_is_one_line(cb_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"pretrained on observations \(6,\)"):
        PretrainedEncoder((4,), model_path=str(cb_model))


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_pretrain_then_train_lora(
    cb_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fast: list[str]
) -> None:
    model = tmp_path / "model"
    args = ["--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--batch-size", "16"]
    assert (
        main(["pretrain", "--data", str(cb_data), "--out", str(model), "--steps", "10", *args]) == 0
    )
    assert json.loads(capsys.readouterr().out)["steps"] == 10
    run = tmp_path / "run"
    argv = [
        "train", "catchball-dqn", "encoder.name=pretrained", f"encoder.model_path={model}",
        "encoder.mode=lora", "--total-steps", "300", "dqn.learning_starts=100",
        "dqn.batch_size=16", "train.eval_freq=0", "train.eval_episodes=2", "--out", str(run),
        *fast,
    ]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 300
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0  # reload from checkpoint
    assert json.loads(capsys.readouterr().out)["episodes"] == 2


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--data", "/no/such/dir"], "does not exist"),
        (["--objectives", "mask,telepathy"], "--objectives mask,telepathy"),
        (["--weights", "1,x"], "--weights"),
        (["--objectives", "mask,inverse", "--weights", "1"], "one non-negative weight"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    cb_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    fragment: str,
) -> None:
    argv = ["pretrain", "--data", str(cb_data), "--out", str(tmp_path / "m"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_missing_manifest_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"manifest\.json"):
        PretrainRows(tmp_path)


def test_pretrain_reader_reads_a_collected_dataset(tmp_path: Path) -> None:
    """`drlzero collect` output feeds the pretrainer: rows, actions and episode ends agree."""
    import drlzero
    from drlzero.data import TrajectoryDataset as Collected

    (out,) = drlzero.collect(
        ["drlzero/CatchBall-v0"], "random", out=tmp_path / "d", episodes=6, seed=3
    )
    src = Collected.open(out)
    ds = PretrainRows(out)
    assert len(ds) == src.num_steps
    assert ds.manifest["env_id"] == "drlzero/CatchBall-v0"
    ep = src.episode(2)
    rows = np.flatnonzero(ds.episode_id == 2)
    np.testing.assert_array_equal(ds.obs[rows], ep.obs)
    np.testing.assert_array_equal(ds.actions[rows[:-1]], ep.actions)
    assert ds.actions[rows[-1]] == -1
    batch = next(ds.iter_batches(16, k_max=3, seed=0))
    assert batch.obs_t.shape == (16, *src.episode(0).obs.shape[1:])
