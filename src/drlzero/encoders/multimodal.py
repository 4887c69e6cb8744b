"""Multimodal encoder for Dict observations (e.g. a BabyAI grid image + the mission in words).

Shape legend: B batch, H, W grid size, C channels, N = H*W cells, E fusion width, T text features.

Each key has its own encoder: a grid encoder for the image, a text encoder (pretrained or
from-scratch) for the token ids. They are fused by concatenation (text features + a pooled grid
vector), by FiLM (the text scales and shifts the grid's conv channels before pooling; Perez et al.
2018, the BabyAI baselines' fusion, Chevalier-Boisvert et al. 2019), by cross-attention in
which the text features query the image cells, each with a learned position embedding (the
mission picks out what to look at, the position says where it is), or by matching: K queries
from the text are scored against every cell's own embedding, and the K score maps join the
grid's conv channels, so where the named object lies is a spatial input before pooling; or by
grounding: the mission's words are matched to the grid's own colour and object names in a frozen
pretrained model's word space (:class:`WordGrounder`), and maps of the cells with the grounded
colour, object, or both join the conv channels. Nothing in that match is trained, so a word the
model places near "red" (a synonym) or a colour-object pair never seen together in training
marks its cells as a training mission does; a from-scratch encoder cannot do the first.

The replay buffer stores one flat float32 array per observation: the image, then what the text
encoder stores (token ids, or cached embeddings for a frozen pretrained model; ids < 2**24 are
exact in float32). :meth:`MultimodalEncoder.preprocess` packs it at the env boundary.
"""

from __future__ import annotations

import math
import re
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

__all__ = ["FUSIONS", "GridEncoder", "MultimodalEncoder", "WordGrounder", "minigrid_words"]

FUSIONS = ("concat", "cross_attention", "film", "match", "ground")


def minigrid_words() -> dict[int, dict[int, str]]:
    """The names a BabyAI mission can give a cell, per image channel: channel 0 the object types
    (box, ball, key, door), channel 1 the colours, each keyed by MiniGrid's value index."""
    try:
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
        from minigrid.envs.babyai.core.verifier import OBJ_TYPES
    except ImportError:
        raise ValueError("fusion=ground names MiniGrid's cells: pip install minigrid") from None
    return {
        0: {OBJECT_TO_IDX[name]: name for name in OBJ_TYPES},
        1: {idx: name for name, idx in COLOR_TO_IDX.items()},
    }


class WordGrounder:
    """Maps a mission (token ids) to the grid value it names in each channel (its colour, its
    object type), by a frozen pretrained model's word geometry; nothing here is trained.

    Words are the ASCII letter runs of the decoded mission. Every mission word and every grid
    word is embedded alone (the text encoder's pooled state of
    that one word, unit norm). With S[w, v] the cosine of mission word w and grid word v, each
    row is centred over the channel's words (S[w, v] - mean_v' S[w, v']): a word such as "the",
    about as close to every colour, then scores near 0 for all of them, while "red" stands out
    for red. The grounded value of a channel is argmax_v max_w of the centred S. An exact grid
    word always wins its own channel (cosine 1); a synonym wins only where the model puts it
    nearest its canonical word. Results are cached per distinct mission and per word.
    """

    def __init__(self, text: nn.Module, words: dict[int, dict[int, str]]) -> None:
        from drlzero.envs.text.tokenize import load_tokenizer

        self.text = text
        self.tokenizer = load_tokenizer(str(getattr(text, "model_path", "")))
        self.channels = sorted(words)
        self.values = [np.array(sorted(words[c]), np.float32) for c in self.channels]
        self.names = [
            [words[c][int(v)] for v in vals]
            for c, vals in zip(self.channels, self.values, strict=True)
        ]
        self.word_vecs: dict[str, np.ndarray] = {}
        self.missions: dict[bytes, np.ndarray] = {}
        self.max_items = 200_000  # cached missions and words, each at most

    def _vectors(self, words: list[str]) -> np.ndarray:
        """Unit-norm pooled states (len(words), H), embedding the words not yet cached."""
        have = {w: self.word_vecs[w] for w in words if w in self.word_vecs}
        todo = [w for w in dict.fromkeys(words) if w not in have]
        if todo:
            rows = [self.tokenizer(w)["input_ids"] for w in todo]
            ids = np.full((len(rows), max(map(len, rows))), -1, np.int64)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = r
            device = next(self.text.parameters()).device
            with torch.inference_mode():
                emb = self.text.embed(torch.from_numpy(ids).to(device)).float().cpu().numpy()
            emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
            for w, e in zip(todo, emb, strict=True):
                have[w] = e
                if len(self.word_vecs) < self.max_items:
                    self.word_vecs[w] = e
        return np.stack([have[w] for w in words])

    def ground(self, ids_BL: np.ndarray) -> np.ndarray:
        """Token-id rows (B, L), padded with -1 -> the grounded value per channel (B, G)."""
        out = np.empty((len(ids_BL), len(self.channels)), np.float32)
        for i, row in enumerate(np.asarray(ids_BL)):
            key = row[row >= 0].astype(np.int64).tobytes()
            got = self.missions.get(key)
            if got is None:
                text = self.tokenizer.decode(row[row >= 0].tolist(), skip_special_tokens=True)
                words = re.findall(r"[a-z]+", text.lower()) or [text]
                mission_WH = self._vectors(words)
                got = np.empty(len(self.channels), np.float32)
                for g, (vals, names) in enumerate(zip(self.values, self.names, strict=True)):
                    sim_WV = mission_WH @ self._vectors(names).T
                    sim_WV -= sim_WV.mean(axis=1, keepdims=True)
                    got[g] = vals[int(sim_WV.max(axis=0).argmax())]
                if len(self.missions) < self.max_items:
                    self.missions[key] = got
            out[i] = got
        return out


class GridEncoder(nn.Module):
    """Small-integer grids (MiniGrid's (object, color, state) cells): a learned embedding per
    (channel, value), summed over channels, then a 3x3 conv. Returns per-cell features (B, N, E)
    and a pooled vector (B, E)."""

    def __init__(self, shape: tuple[int, ...], *, width: int = 64, max_value: int = 256) -> None:
        super().__init__()
        h, w, c = shape
        self.max_value = max_value
        self.embed = nn.Embedding(c * max_value, width)
        self.register_buffer("offsets", torch.arange(c) * max_value, persistent=False)
        self.conv = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.pool = nn.Sequential(nn.Linear(h * w * width, width), nn.ReLU())

    def cell_embedding(self, image_BHWC: torch.Tensor) -> torch.Tensor:
        """Each cell's own embedding (B, E, H, W): the sum of its channels' value embeddings."""
        idx = image_BHWC.long().clamp(0, self.max_value - 1) + self.offsets
        return self.embed(idx).sum(dim=3).permute(0, 3, 1, 2)

    def feature_map(self, image_BHWC: torch.Tensor) -> torch.Tensor:
        """The conv features (B, E, H, W), before pooling."""
        return self.conv(self.cell_embedding(image_BHWC))

    def forward(self, image_BHWC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cells_BNE = self.feature_map(image_BHWC).flatten(2).transpose(1, 2)
        return cells_BNE, self.pool(cells_BNE.flatten(1))


class MultimodalEncoder(nn.Module):
    """Encodes ``{"image": (H, W, C) grid, text_key: (L,) token ids}``.

    Args:
        obs_space: the Dict observation space.
        text_encoder: an encoder over the text key (may define ``preprocess``/``stored_shape``).
        text_key, image_key: the Dict keys.
        fusion: concat | cross_attention | film | match | ground.
        width: E, the grid encoder and fusion width.
        n_heads: attention heads (cross_attention) or query maps K (match).
        ground_words: fusion=ground, the grid words per image channel ({channel: {value:
            word}}); default :func:`minigrid_words`.
    """

    features_dim: int

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        text_encoder: nn.Module,
        *,
        text_key: str = "text",
        image_key: str = "image",
        fusion: str = "concat",
        width: int = 64,
        n_heads: int = 4,
        ground_words: dict[int, dict[int, str]] | None = None,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        for key in (text_key, image_key):
            if key not in obs_space.spaces:
                raise ValueError(f"the multimodal encoder needs the key {key!r} in {obs_space}")
        self.text_key, self.image_key = text_key, image_key
        self.image_shape = tuple(int(d) for d in obs_space[image_key].shape)
        self.image_size = math.prod(self.image_shape)
        self.text = text_encoder
        self.text_shape = tuple(getattr(text_encoder, "stored_shape", obs_space[text_key].shape))
        self.grid = GridEncoder(self.image_shape, width=width)
        self.fusion = fusion
        t = text_encoder.features_dim
        if fusion == "cross_attention":
            # Attention sums the cells it picks, so without a position term the result says
            # what the mission's object looks like but not where it is; a learned embedding
            # per cell (N, E) is added to the keys and values.
            n_cells = self.image_shape[0] * self.image_shape[1]
            self.cell_pos = nn.Parameter(torch.randn(n_cells, width) * 0.02)
            self.query = nn.Linear(t, width)
            self.attn = nn.MultiheadAttention(width, n_heads, batch_first=True)
        elif fusion == "film":
            # FiLM (Perez et al. 2018), as in the BabyAI baselines: the text gives a scale and
            # a shift per channel of a second conv, so which cells light up depends on the
            # mission before the grid is pooled, not only in the head after it.
            h, w = self.image_shape[0], self.image_shape[1]
            self.film = nn.Linear(t, 2 * width)
            self.film_conv = nn.Conv2d(width, width, 3, padding=1)
            self.film_pool = nn.Sequential(nn.Linear(h * w * width, width), nn.ReLU())
        elif fusion == "match":
            # A cell's embedding is the sum of its (object, colour, state) embeddings, so a
            # query's score q.e = q.e_object + q.e_colour + q.e_state is highest where both
            # named words hold; K maps and the conv after them let the net threshold that sum.
            h, w = self.image_shape[0], self.image_shape[1]
            self.match_heads = n_heads
            self.match_query = nn.Linear(t, n_heads * width)
            self.match_conv = nn.Sequential(
                nn.Conv2d(width + n_heads, width, 3, padding=1), nn.ReLU()
            )
            self.match_pool = nn.Sequential(nn.Linear(h * w * width, width), nn.ReLU())
        self.grounder: WordGrounder | None = None
        if fusion == "ground":
            if not getattr(text_encoder, "embed_at_boundary", False):
                raise ValueError(
                    "fusion=ground needs a frozen pretrained text encoder with its cache "
                    "(encoder.text_encoder=pretrained, encoder.mode=frozen, encoder.cache=true)"
                )
            words = ground_words or minigrid_words()
            self.grounder = WordGrounder(text_encoder, words)
            known = torch.zeros(len(words), 256, dtype=torch.bool)
            for g, c in enumerate(self.grounder.channels):
                known[g, list(words[c])] = True
            self.register_buffer("ground_known", known, persistent=False)
            self.register_buffer(
                "ground_channels", torch.tensor(self.grounder.channels), persistent=False
            )
            # Three maps: cells with the grounded value of the first channel, of the second,
            # and of both (the named object), each 0/1.
            h, w = self.image_shape[0], self.image_shape[1]
            n_maps = len(self.grounder.channels) + 1
            self.ground_conv = nn.Sequential(
                nn.Conv2d(width + n_maps, width, 3, padding=1), nn.ReLU()
            )
            self.ground_pool = nn.Sequential(nn.Linear(h * w * width, width), nn.ReLU())
        self.n_ground = len(self.grounder.channels) if self.grounder is not None else 0
        self.features_dim = t + width  # every fusion: the text features + one E-wide grid part

    @property
    def stored_shape(self) -> tuple[int, ...]:
        return (self.image_size + math.prod(self.text_shape) + self.n_ground,)

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def preprocess(self, obs: dict[str, Any]) -> np.ndarray:
        """Env boundary: a batch of Dict observations -> one flat float32 array per row."""
        image = np.asarray(obs[self.image_key]).reshape(len(obs[self.image_key]), -1)
        ids = np.asarray(obs[self.text_key])
        prep = getattr(self.text, "preprocess", None)
        text = prep(ids) if prep is not None else ids
        parts = [image.astype(np.float32), text.reshape(len(text), -1).astype(np.float32)]
        if self.grounder is not None:
            parts.append(self.grounder.ground(ids))
        return np.concatenate(parts, axis=1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        image = obs[:, : self.image_size].reshape(-1, *self.image_shape)
        end = obs.shape[1] - self.n_ground
        text = obs[:, self.image_size : end].reshape(-1, *self.text_shape)
        text_stored_float = getattr(self.text, "stored_dtype", np.dtype(np.int32)) == np.float32
        text_BT = self.text(text if text_stored_float else text.round().int())
        return self.fuse(text_BT, image, obs[:, end:] if self.n_ground else None)

    def match_maps(self, text_BT: torch.Tensor, cells_BEHW: torch.Tensor) -> torch.Tensor:
        """Match fusion's K maps (B, K, H, W): each text query's scaled dot product with every
        cell's embedding, as in attention's scores but kept as a map, not softmaxed into a sum."""
        width = cells_BEHW.shape[1]
        q_BKE = self.match_query(text_BT).view(-1, self.match_heads, width)
        return torch.einsum("bke,behw->bkhw", q_BKE, cells_BEHW) / math.sqrt(width)

    def ground_maps(self, image_BHWC: torch.Tensor, ground_BG: torch.Tensor) -> torch.Tensor:
        """Ground fusion's maps (B, G + 1, H, W): 1 where a cell's channel holds the grounded
        value, one map per channel, and their product (every grounded value at once). Only
        cells that every channel can name count (an empty cell's colour index is red's, 0)."""
        chans_BGHW = image_BHWC[..., self.ground_channels].permute(0, 3, 1, 2).long()
        g_1G11 = torch.arange(chans_BGHW.shape[1], device=chans_BGHW.device)[None, :, None, None]
        known_BGHW = self.ground_known[g_1G11, chans_BGHW.clamp(0, 255)]
        named_B1HW = known_BGHW.all(dim=1, keepdim=True)
        hits_BGHW = (chans_BGHW == ground_BG[:, :, None, None].long()) & named_B1HW
        hits_BGHW = hits_BGHW.float()
        return torch.cat([hits_BGHW, hits_BGHW.prod(dim=1, keepdim=True)], dim=1)

    def fuse(
        self,
        text_BT: torch.Tensor,
        image_BHWC: torch.Tensor,
        ground_BG: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Text features (B, T) and the grid image -> the fused features (B, D); ``ground_BG``
        is fusion=ground's grounded value per channel (what :meth:`preprocess` appends)."""
        if self.fusion == "ground":
            assert ground_BG is not None, "fusion=ground needs the grounded values"
            maps_BMHW = self.ground_maps(image_BHWC, ground_BG)
            x_BEHW = self.grid.feature_map(image_BHWC)
            x_BEHW = self.ground_conv(torch.cat([x_BEHW, maps_BMHW], dim=1))
            return torch.cat([text_BT, self.ground_pool(x_BEHW.flatten(1))], dim=1)
        if self.fusion == "film":
            scale_BE, shift_BE = self.film(text_BT).chunk(2, dim=1)
            x_BEHW = self.film_conv(self.grid.feature_map(image_BHWC))
            x_BEHW = torch.relu(
                x_BEHW * (1 + scale_BE[:, :, None, None]) + shift_BE[:, :, None, None]
            )
            return torch.cat([text_BT, self.film_pool(x_BEHW.flatten(1))], dim=1)
        if self.fusion == "match":
            cells_BEHW = self.grid.cell_embedding(image_BHWC)
            maps_BKHW = self.match_maps(text_BT, cells_BEHW)
            x_BEHW = self.match_conv(torch.cat([self.grid.conv(cells_BEHW), maps_BKHW], dim=1))
            return torch.cat([text_BT, self.match_pool(x_BEHW.flatten(1))], dim=1)
        cells_BNE, image_BE = self.grid(image_BHWC)
        if self.fusion == "cross_attention":
            q_B1E = self.query(text_BT).unsqueeze(1)
            kv_BNE = cells_BNE + self.cell_pos
            attended_B1E, _ = self.attn(q_B1E, kv_BNE, kv_BNE, need_weights=False)
            return torch.cat([text_BT, attended_B1E.squeeze(1)], dim=1)
        return torch.cat([text_BT, image_BE], dim=1)
