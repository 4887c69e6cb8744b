"""Tests for drlzero.encoders.cnn and drlzero.encoders.transformer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drlzero.encoders.cnn import MinAtarCNN, NatureCNN, channels_last
from drlzero.encoders.transformer import TransformerEncoder


def _assert_all_grads(module: nn.Module, out: torch.Tensor) -> None:
    out.pow(2).sum().backward()
    for name, param in module.named_parameters():
        assert param.grad is not None, f"no gradient for {name}"


# --------------------------------------------------------------------------- CNN


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((84, 84, 4), True),
        ((4, 84, 84), False),
        ((10, 10, 4), True),
        ((4, 10, 10), False),
        ((64, 64, 3), True),
        ((3, 64, 64), False),
        ((84, 84, 32), False),  # too many channels for channel-last
        ((4, 84, 4), False),  # ambiguous: first dim is as small as the last
    ],
)
def test_channels_last(shape: tuple[int, int, int], expected: bool) -> None:
    assert channels_last(shape) is expected


def test_channels_last_rejects_non_3d() -> None:
    with pytest.raises(ValueError, match="3-D"):
        channels_last((84, 84))


@pytest.mark.parametrize("shape", [(84, 84, 4), (4, 84, 84)])
def test_nature_cnn_shapes(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    enc = NatureCNN(shape)
    assert enc.features_dim == 512
    out = enc(torch.randint(0, 256, (2, *shape), dtype=torch.uint8))
    assert out.shape == (2, 512)
    assert out.dtype == torch.float32
    assert (out >= 0).all()


def test_nature_cnn_layouts_agree() -> None:
    torch.manual_seed(0)
    last = NatureCNN((84, 84, 4), features_dim=32)
    first = NatureCNN((4, 84, 84), features_dim=32)
    first.load_state_dict(last.state_dict())
    obs_BHWC = torch.rand(2, 84, 84, 4)
    torch.testing.assert_close(last(obs_BHWC), first(obs_BHWC.permute(0, 3, 1, 2)))


def test_nature_cnn_custom_features_dim_and_min_size() -> None:
    enc = NatureCNN((36, 36, 1), features_dim=64)
    assert enc.features_dim == 64
    assert enc(torch.zeros(3, 36, 36, 1)).shape == (3, 64)


@pytest.mark.parametrize("cls", [NatureCNN, MinAtarCNN])
def test_uint8_scaling_matches_prescaled_float(cls: type[nn.Module]) -> None:
    torch.manual_seed(0)
    shape = (84, 84, 4) if cls is NatureCNN else (10, 10, 4)
    enc = cls(shape)
    obs_u8 = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    torch.testing.assert_close(enc(obs_u8), enc(obs_u8.float() / 255.0))


@pytest.mark.parametrize("shape", [(10, 10, 4), (4, 10, 10)])
def test_minatar_cnn_shapes(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    enc = MinAtarCNN(shape)
    assert enc.features_dim == 128
    assert enc(torch.rand(5, *shape)).shape == (5, 128)


def test_minatar_cnn_bool_input_is_not_scaled() -> None:
    torch.manual_seed(0)
    enc = MinAtarCNN((10, 10, 6), features_dim=16)
    obs_bool = torch.rand(4, 10, 10, 6) > 0.5
    out = enc(obs_bool)
    assert out.shape == (4, 16)
    torch.testing.assert_close(out, enc(obs_bool.float()))


@pytest.mark.parametrize("cls", [NatureCNN, MinAtarCNN])
def test_cnn_gradients_reach_all_params(cls: type[nn.Module]) -> None:
    torch.manual_seed(0)
    shape = (84, 84, 4) if cls is NatureCNN else (10, 10, 4)
    enc = cls(shape)
    _assert_all_grads(enc, enc(torch.rand(2, *shape)))


@pytest.mark.parametrize(
    ("cls", "shape", "match"),
    [
        (NatureCNN, (84, 84), "3-D"),
        (NatureCNN, (1, 84, 84, 4), "3-D"),
        (NatureCNN, (32, 32, 4), "36x36"),
        (NatureCNN, (4, 20, 20), "36x36"),
        (MinAtarCNN, (100,), "3-D"),
        (MinAtarCNN, (2, 2, 4), "3x3"),
    ],
)
def test_cnn_bad_shapes_raise(cls: type[nn.Module], shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(shape)


# --------------------------------------------------------------------------- Transformer


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_transformer_shapes(pooling: str) -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder((6, 3), d_model=32, n_heads=4, pooling=pooling)
    assert enc.features_dim == 32
    assert enc(torch.randn(5, 6, 3)).shape == (5, 32)


def test_transformer_cls_and_mean_differ() -> None:
    torch.manual_seed(0)
    cls_enc = TransformerEncoder((6, 3), pooling="cls")
    mean_enc = TransformerEncoder((6, 3), pooling="mean")
    # Same weights everywhere except the CLS token, so only pooling differs.
    mean_enc.load_state_dict(
        {k: v for k, v in cls_enc.state_dict().items() if k != "cls_D"}, strict=True
    )
    assert "cls_D" not in dict(mean_enc.named_parameters())
    obs = torch.randn(4, 6, 3)
    assert not torch.allclose(cls_enc(obs), mean_enc(obs), atol=1e-4)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_transformer_permutation_invariance(pooling: str) -> None:
    torch.manual_seed(0)
    obs = torch.randn(3, 7, 5)
    perm = torch.randperm(7)
    invariant = TransformerEncoder((7, 5), pooling=pooling, positional=False).eval()
    assert torch.allclose(invariant(obs), invariant(obs[:, perm]), atol=1e-5)
    ordered = TransformerEncoder((7, 5), pooling=pooling, positional=True).eval()
    with torch.no_grad():
        ordered.pos_LD.normal_()  # make the positional signal clearly non-negligible
    assert not torch.allclose(ordered(obs), ordered(obs[:, perm]), atol=1e-3)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_transformer_gradients_reach_all_params(pooling: str) -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder((4, 3), pooling=pooling)
    _assert_all_grads(enc, enc(torch.randn(2, 4, 3)))


@pytest.mark.parametrize(
    ("obs_shape", "kwargs", "match"),
    [
        ((12,), {}, "FrameStack"),
        ((2, 3, 4), {}, "2-D"),
        ((4, 3), {"d_model": 30, "n_heads": 4}, "divisible"),
        ((4, 3), {"pooling": "max"}, "pooling"),
    ],
)
def test_transformer_bad_args_raise(
    obs_shape: tuple[int, ...], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        TransformerEncoder(obs_shape, **kwargs)  # type: ignore[arg-type]


def test_transformer_overfits_token_sum() -> None:
    torch.manual_seed(0)
    n_tokens, n_features = 5, 3
    enc = TransformerEncoder((n_tokens, n_features), d_model=32, n_heads=4, ff_dim=64)
    model = nn.Sequential(enc, nn.Linear(enc.features_dim, 1))
    obs = torch.randn(16, n_tokens, n_features)
    target = obs[:, :, 0].sum(dim=1, keepdim=True)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_fn() -> torch.Tensor:
        return nn.functional.mse_loss(model(obs), target)

    initial = loss_fn().item()
    final = initial
    for _ in range(200):
        optim.zero_grad()
        loss = loss_fn()
        loss.backward()
        optim.step()
        final = loss.item()
        if final < initial / 10:  # stop early to keep the suite fast
            break
    assert final < initial / 10, f"MSE only went from {initial:.3g} to {final:.3g}"
