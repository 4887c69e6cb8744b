"""Convolutional encoders for image-like observations.

Shape legend for tensor names: B batch, C channels, H height, W width, N flattened conv
features, D output features.

Both encoders accept channel-last (B, H, W, C) observations, as Gymnasium and MinAtar emit them,
or channel-first (B, C, H, W). The layout is decided once from ``obs_shape`` in the constructor.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MinAtarCNN", "NatureCNN", "channels_last"]

_MAX_CHANNELS = 16


def channels_last(obs_shape: tuple[int, ...]) -> bool:
    """Guess whether a 3-D image observation shape is channel-last (H, W, C).

    The heuristic: channel-last when the last dim is the smallest, is at most 16, and the first
    dim is not also that small (which would make the shape ambiguous, e.g. (4, 84, 4)).

    Args:
        obs_shape: Per-sample observation shape, 3-D.

    Returns:
        True for (H, W, C), False for (C, H, W).

    Raises:
        ValueError: If ``obs_shape`` is not 3-D.
    """
    if len(obs_shape) != 3:
        raise ValueError(f"expected a 3-D image obs_shape (H, W, C) or (C, H, W), got {obs_shape}")
    first, _, last = obs_shape
    return last == min(obs_shape) and last <= _MAX_CHANNELS and first > last


def _to_channels_first(obs: torch.Tensor, is_channels_last: bool) -> torch.Tensor:
    """Convert a batched observation to float (B, C, H, W), scaling uint8 pixels to [0, 1]."""
    # Only uint8 means 0..255 pixels; bool/float are already in a sensible range.
    x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
    return x.permute(0, 3, 1, 2) if is_channels_last else x


# One opaque call in a traced graph (drlzero.accel.trace): its dtype branch runs on real tensors.
torch.fx.wrap("_to_channels_first")


class _ConvEncoder(nn.Module):
    """Shared plumbing: layout detection, conv torso, flatten size by dummy forward, linear head."""

    features_dim: int

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        convs: nn.Sequential,
        features_dim: int,
        min_hw: int,
        name: str,
    ) -> None:
        super().__init__()
        obs_shape = tuple(int(d) for d in obs_shape)
        if len(obs_shape) != 3:
            raise ValueError(
                f"{name} needs a 3-D image obs_shape (H, W, C) or (C, H, W), got {obs_shape}"
            )
        self.channels_last = channels_last(obs_shape)
        if self.channels_last:
            h, w, c = obs_shape
        else:
            c, h, w = obs_shape
        if h < min_hw or w < min_hw:
            raise ValueError(f"{name} needs images of at least {min_hw}x{min_hw}, got {h}x{w}")
        self.obs_shape = obs_shape
        self.features_dim = int(features_dim)
        self.convs = convs
        # Dummy forward avoids hand-computing conv output sizes for every input resolution.
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, c, h, w)).flatten(1).shape[1]
        self.head = nn.Sequential(nn.Linear(n_flat, self.features_dim), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Encode a batch of images.

        Args:
            obs: (B, H, W, C) or (B, C, H, W) matching the constructor's ``obs_shape``; uint8
                pixels are scaled by 1/255, bool/float inputs are cast to float.

        Returns:
            Features of shape (B, features_dim).
        """
        obs_BCHW = _to_channels_first(obs, self.channels_last)
        flat_BN = self.convs(obs_BCHW).flatten(1)
        return self.head(flat_BN)


class NatureCNN(_ConvEncoder):
    """Nature-DQN convolutional torso (Mnih et al., 2015, "Human-level control through deep
    reinforcement learning", Nature 518).

    conv 32 8x8 s4 -> ReLU -> conv 64 4x4 s2 -> ReLU -> conv 64 3x3 s1 -> ReLU -> flatten ->
    linear(features_dim) -> ReLU.

    Attributes:
        features_dim: Size of the output feature vector.
        channels_last: Whether observations are (B, H, W, C) and get permuted in ``forward``.
    """

    def __init__(self, obs_shape: tuple[int, ...], *, features_dim: int = 512) -> None:
        """Build the network.

        Args:
            obs_shape: Per-sample image shape, (H, W, C) or (C, H, W), e.g. (84, 84, 4).
            features_dim: Output feature size.

        Raises:
            ValueError: If ``obs_shape`` is not 3-D or smaller than 36x36.
        """
        n_channels = _channel_count(obs_shape, "NatureCNN")
        convs = nn.Sequential(
            nn.Conv2d(n_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
        )
        super().__init__(obs_shape, convs, features_dim, min_hw=36, name="NatureCNN")


class MinAtarCNN(_ConvEncoder):
    """Small MinAtar network (Young & Tian, 2019, "MinAtar: An Atari-Inspired Testbed for
    Thorough and Reproducible Reinforcement Learning Experiments", arXiv:1903.03176).

    conv 16 3x3 s1 -> ReLU -> flatten -> linear(features_dim) -> ReLU. MinAtar observations are
    10x10xC bool/uint8 grids of object channels.

    Attributes:
        features_dim: Size of the output feature vector.
        channels_last: Whether observations are (B, H, W, C) and get permuted in ``forward``.
    """

    def __init__(self, obs_shape: tuple[int, ...], *, features_dim: int = 128) -> None:
        """Build the network.

        Args:
            obs_shape: Per-sample grid shape, (H, W, C) or (C, H, W), e.g. (10, 10, 4).
            features_dim: Output feature size.

        Raises:
            ValueError: If ``obs_shape`` is not 3-D or smaller than 3x3.
        """
        n_channels = _channel_count(obs_shape, "MinAtarCNN")
        convs = nn.Sequential(nn.Conv2d(n_channels, 16, kernel_size=3, stride=1), nn.ReLU())
        super().__init__(obs_shape, convs, features_dim, min_hw=3, name="MinAtarCNN")


def _channel_count(obs_shape: tuple[int, ...], name: str) -> int:
    """Number of input channels, validated before the conv layers are built."""
    if len(obs_shape) != 3:
        raise ValueError(
            f"{name} needs a 3-D image obs_shape (H, W, C) or (C, H, W), got {tuple(obs_shape)}"
        )
    return int(obs_shape[-1] if channels_last(tuple(obs_shape)) else obs_shape[0])
