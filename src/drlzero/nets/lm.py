"""A causal language model as the policy network: score each named action's words given a
prompt.

The policy of GLAM (Carta et al. 2023, "Grounding Large Language Models in Interactive
Environments with Online RL") and TWOSOME (Tan et al. 2024, "True Knowledge Comes from
Practice"): a prompt holds the valid actions and the observation in words; each action ``a``
with tokens ``c_1..c_n`` gets

    ll(a) = sum_j log p_LM(c_j | prompt, c_<j)

and the policy is ``softmax_a(ll(a) / norm(a))`` over the allowed actions, ``norm`` being 1
(``sum``), the action's token count (``token``) or its word count (``word``). Masked actions
get probability 0. The critic is a value head on the prompt's last hidden state (the shared
model) or a separate small network over the prompt's token ids.

All candidates come from ONE forward of the batch of prompts: its key/value cache is repeated
for the A candidates of every prompt, and one more forward of the (B*A, La-1) candidate tokens
gives the rest of the log-likelihoods (:func:`action_loglik`). Prompts are right-padded; the
candidate tokens get position ids ``len(prompt_b) + j`` and an attention mask that hides the
padding, so each candidate sees exactly its own prompt, as a separate forward would.

Shape legend: B prompts (envs or minibatch), P prompt tokens, A actions, La action tokens,
H hidden size, V vocabulary.

The acting side and the PPO learner over this network are :mod:`drlzero.algos.lm_policy`.

Example:
    >>> net = LMActorCritic(lm, tokenizer, ["go left", "go right"], num_actions=2)  # doctest: +SKIP
    >>> dist, value_B = net(obs_ids_BL, None)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from drlzero.errors import ConfigError
from drlzero.masks import masked_logits
from drlzero.nets.distributions import ActionDist

NORMALIZATIONS = ("sum", "token", "word")
MODES = ("lora", "full", "frozen")
CRITICS = ("shared", "separate")
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def normalized_scores(
    loglik_BA: torch.Tensor, n_tokens_A: torch.Tensor, n_words_A: torch.Tensor, how: str
) -> torch.Tensor:
    """The policy's logits from summed log-likelihoods: ``ll``, ``ll / tokens`` or
    ``ll / words``."""
    if how == "sum":
        return loglik_BA
    if how == "token":
        return loglik_BA / n_tokens_A.to(loglik_BA)
    if how == "word":
        return loglik_BA / n_words_A.to(loglik_BA)
    raise ConfigError(f"lm.normalize={how!r} is not one of: {', '.join(NORMALIZATIONS)}")


def _backbone(lm: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(the decoder stack returning hidden states, the LM head) of a ``*ForCausalLM``."""
    base = lm.get_decoder() if hasattr(lm, "get_decoder") else getattr(lm, "model", None)
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if base is None or head is None:
        raise ConfigError(
            f"{type(lm).__name__} is not a causal LM with a decoder and an output head; "
            "set lm.model_path to a *ForCausalLM model directory"
        )
    return base, head


def _cache_kwarg(base: nn.Module) -> str:
    """``cache`` in recent transformers, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def action_loglik(
    lm: nn.Module,
    prompt_BP: torch.Tensor,
    prompt_len_B: torch.Tensor,
    actions_AL: torch.Tensor,
    action_len_A: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-likelihood of every action's tokens after every prompt, KV cache shared.

    Args:
        lm: a Hugging Face causal LM.
        prompt_BP: right-padded prompt ids (any id in the padding: it is masked).
        prompt_len_B: real prompt lengths (>= 1).
        actions_AL: right-padded action ids.
        action_len_A: real action lengths (>= 1).

    Returns:
        ``(loglik_BA, hidden_BH)``: the log-likelihoods and the prompt's last real hidden state
        (after the final norm), for the critic.
    """
    base, head = _backbone(lm)
    B, P = prompt_BP.shape
    A, La = actions_AL.shape
    dev = prompt_BP.device
    pmask_BP = torch.arange(P, device=dev)[None] < prompt_len_B[:, None]
    out = base(input_ids=prompt_BP, attention_mask=pmask_BP.long(), use_cache=La > 1)
    hidden_BH = out.last_hidden_state[torch.arange(B, device=dev), prompt_len_B - 1]
    # First action token: from the prompt's last position (vocabulary logits there only).
    logp_first_BV = torch.log_softmax(head(hidden_BH).float(), dim=-1)
    loglik_BA = logp_first_BV[:, actions_AL[:, 0]]
    if La == 1:
        return loglik_BA, hidden_BH
    # The other tokens: one forward of B*A candidates (inputs c_0..c_{La-2}) on the cache,
    # repeated A times per prompt (row b*A + a is prompt b, action a).
    cache = getattr(out, "cache", None) or out.past_key_values
    cache.batch_repeat_interleave(A)
    inputs_NL = actions_AL[:, :-1].repeat(B, 1)  # (B*A, La-1)
    start_N = prompt_len_B.repeat_interleave(A)
    pos_NL = start_N[:, None] + torch.arange(La - 1, device=dev)[None]
    # The candidate part of the mask is all ones: padding after an action's last token only
    # follows the real tokens (causal), and its targets are dropped below.
    mask_N = torch.cat(
        [pmask_BP.repeat_interleave(A, 0), torch.ones(B * A, La - 1, dtype=torch.bool, device=dev)],
        dim=1,
    )
    out2 = base(
        input_ids=inputs_NL,
        attention_mask=mask_N.long(),
        position_ids=pos_NL,
        use_cache=True,
        **{_cache_kwarg(base): cache},
    )
    logp_NLV = torch.log_softmax(head(out2.last_hidden_state).float(), dim=-1)
    targets_NL = actions_AL[:, 1:].repeat(B, 1)
    tok_NL = logp_NLV.gather(-1, targets_NL[..., None]).squeeze(-1)
    real_AL = torch.arange(1, La, device=dev)[None] < action_len_A[:, None]
    rest_BA = (tok_NL * real_AL.repeat(B, 1)).sum(-1).view(B, A)
    return loglik_BA + rest_BA, hidden_BH


def naive_action_loglik(
    lm: nn.Module,
    prompts: Sequence[Sequence[int]],
    actions: Sequence[Sequence[int]],
) -> torch.Tensor:
    """The reference: one full forward of ``prompt + action`` per (prompt, action) pair.

    Returns ``loglik_BA`` (float32); what :func:`action_loglik` must equal.
    """
    dev = next(lm.parameters()).device
    out = torch.zeros(len(prompts), len(actions))
    for b, p in enumerate(prompts):
        for a, c in enumerate(actions):
            ids = torch.tensor([list(p) + list(c)], device=dev)
            logp = torch.log_softmax(lm(input_ids=ids).logits[0].float(), dim=-1)
            n = len(p)
            out[b, a] = sum(float(logp[n - 1 + j, c[j]]) for j in range(len(c)))
    return out


class PromptCodec:
    """Token ids of the prompt around an observation, and of the action names.

    prompt = ``header`` (with ``{actions}`` = the comma-joined names) + observation ids +
    ``footer``; each action is scored as ``" " + name`` after the footer.

    Args:
        tokenizer: ``encode(text, add_special_tokens=False) -> list[int]``.
        actions: the action names, index k naming env action k.
        header, footer: the prompt text before and after the observation.
    """

    def __init__(self, tokenizer: Any, actions: Sequence[str], header: str, footer: str) -> None:
        self.tokenizer = tokenizer
        self.header_t, self.footer_t = header, footer
        self.set_actions(actions)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def set_actions(self, actions: Sequence[str]) -> None:
        """Rename the actions (e.g. to synonyms): the header and the candidates change."""
        names = [str(a).strip() for a in actions]
        if not names or any(not n for n in names):
            raise ConfigError(f"lm.actions={list(actions)!r} must be non-empty action names")
        self.names = names
        self.header = self._ids(self.header_t.format(actions=", ".join(names)))
        self.footer = self._ids(self.footer_t)
        ids = [self._ids(" " + n) for n in names]
        La = max(len(i) for i in ids)
        self.actions_AL = torch.zeros(len(ids), La, dtype=torch.long)
        for a, i in enumerate(ids):
            self.actions_AL[a, : len(i)] = torch.tensor(i)
        self.action_len_A = torch.tensor([len(i) for i in ids])
        self.n_words_A = torch.tensor([len(n.split()) for n in names])
        self.action_ids = ids

    def prompts(self, obs_BL: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt_BP right-padded with 0, prompt_len_B) for observation ids padded with -1."""
        obs = torch.as_tensor(obs_BL).long().cpu()
        real_B = (obs >= 0).sum(1)
        n_h, n_f = len(self.header), len(self.footer)
        lens = n_h + real_B + n_f
        P = int(lens.max())
        out = torch.zeros(obs.shape[0], P, dtype=torch.long)
        out[:, :n_h] = torch.tensor(self.header, dtype=torch.long)
        footer = torch.tensor(self.footer, dtype=torch.long)
        for b in range(obs.shape[0]):
            n = int(real_B[b])
            out[b, n_h : n_h + n] = obs[b, :n]  # observation ids are left-aligned, pad -1
            out[b, n_h + n : n_h + n + n_f] = footer
        return out, lens

    def prompt_lists(self, obs_BL: np.ndarray) -> list[list[int]]:
        """The prompts as plain id lists (for :func:`naive_action_loglik`)."""
        p, n = self.prompts(obs_BL)
        return [p[b, : int(n[b])].tolist() for b in range(p.shape[0])]


class LMActorCritic(nn.Module):
    """A causal LM scoring named actions (the actor) and a value head (the critic).

    Args:
        lm: the causal LM (already adapted for ``mode``: LoRA layers injected, or frozen).
        tokenizer: its tokenizer.
        actions: names of env actions 0..K-1; env actions >= K get probability 0.
        num_actions: the env's action count (K <= num_actions).
        normalize: sum | token | word.
        critic: ``shared`` (value head on the prompt's last hidden state) or ``separate`` (an
            embedding-bag MLP over the prompt ids, no LM pass needed for values).
        action_head: add a zero-initialised linear head on the last hidden state to the scores
            (``mode=frozen``: what trains there besides the critic).
        header, footer: see :class:`PromptCodec`.
        autocast: bf16 autocast of the LM (CUDA).
    """

    def __init__(
        self,
        lm: nn.Module,
        tokenizer: Any,
        actions: Sequence[str],
        *,
        num_actions: int,
        normalize: str = "token",
        critic: str = "shared",
        action_head: bool = False,
        header: str = "Possible actions: {actions}.\n",
        footer: str = "\nNext action:",
        autocast: bool = False,
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"lm.normalize={normalize!r} is not one of: sum, token, word")
        if len(actions) > num_actions:
            raise ConfigError(
                f"lm.actions names {len(actions)} actions but the env has {num_actions}; "
                "name at most that many"
            )
        self.lm = lm
        self.codec = PromptCodec(tokenizer, actions, header, footer)
        self.num_actions = int(num_actions)
        self.normalize = normalize
        self.autocast = autocast
        H = int(lm.config.hidden_size)
        self.critic_kind = critic
        self.value_head = nn.Linear(H, 1)
        nn.init.orthogonal_(self.value_head.weight, 1.0)
        nn.init.zeros_(self.value_head.bias)
        self.value_net: nn.Module | None = None
        if critic == "separate":
            self.value_net = nn.Embedding(int(lm.config.vocab_size), 64)
            self.value_head = nn.Sequential(
                nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
            )
        elif critic != "shared":
            raise ConfigError(f"lm.critic={critic!r} is not one of: shared, separate")
        self.action_head: nn.Linear | None = None
        if action_head:
            self.action_head = nn.Linear(H, len(actions))
            nn.init.zeros_(self.action_head.weight)
            nn.init.zeros_(self.action_head.bias)

    def set_actions(self, actions: Sequence[str]) -> None:
        """Rename the actions (same count: a renamed policy, e.g. the synonym split)."""
        if len(actions) != len(self.codec.names):
            raise ConfigError(f"renaming needs {len(self.codec.names)} names, got {len(actions)}")
        self.codec.set_actions(actions)

    def value_head_device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def scores(self, obs_BL: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits_BK over the K named actions, hidden_BH)."""
        dev = self.value_head_device()
        c = self.codec
        prompt_BP, len_B = c.prompts(obs_BL)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            ll_BK, hidden_BH = action_loglik(
                self.lm,
                prompt_BP.to(dev),
                len_B.to(dev),
                c.actions_AL.to(dev),
                c.action_len_A.to(dev),
            )
        hidden_BH = hidden_BH.float()
        logits = normalized_scores(
            ll_BK, c.action_len_A.to(dev), c.n_words_A.to(dev), self.normalize
        )
        if self.action_head is not None:
            logits = logits + self.action_head(hidden_BH)
        return logits, hidden_BH

    def _value(
        self, obs_BL: torch.Tensor | np.ndarray, hidden_BH: torch.Tensor | None
    ) -> torch.Tensor:
        if self.value_net is None:
            assert hidden_BH is not None
            return self.value_head(hidden_BH).squeeze(-1)
        obs = torch.as_tensor(obs_BL).long().to(self.value_head_device())
        real = (obs >= 0).float()  # mean of the real ids' embeddings (pad -1 weighs 0)
        emb = self.value_net.weight[obs.clamp(min=0)] * real[..., None]  # type: ignore[union-attr]
        feats = emb.sum(1) / real.sum(1, keepdim=True).clamp(min=1.0)
        return self.value_head(feats).squeeze(-1)

    def full_logits(self, logits_BK: torch.Tensor, mask_BA: torch.Tensor | None) -> torch.Tensor:
        """(B, num_actions) logits: unnamed actions and masked ones at -inf (probability 0)."""
        B, K = logits_BK.shape
        out = logits_BK
        if self.num_actions > K:
            pad = torch.full((B, self.num_actions - K), -torch.inf, device=out.device)
            out = torch.cat([out, pad], dim=1)
        return masked_logits(out, mask_BA)

    def forward(
        self, obs_BL: torch.Tensor | np.ndarray, mask_BA: torch.Tensor | None = None
    ) -> tuple[ActionDist, torch.Tensor]:
        logits, hidden = self.scores(obs_BL)
        dist = Categorical(logits=self.full_logits(logits, mask_BA), validate_args=False)
        return ActionDist([dist], multi=False), self._value(obs_BL, hidden)

    def value(self, obs_BL: torch.Tensor | np.ndarray) -> torch.Tensor:
        """V(obs), (B,); the shared critic runs the prompt forward only (no candidates)."""
        if self.value_net is not None:
            return self._value(obs_BL, None)
        base, _ = _backbone(self.lm)
        dev = self.value_head_device()
        prompt_BP, len_B = self.codec.prompts(obs_BL)
        prompt_BP, len_B = prompt_BP.to(dev), len_B.to(dev)
        mask = (torch.arange(prompt_BP.shape[1], device=dev)[None] < len_B[:, None]).long()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            h = base(input_ids=prompt_BP, attention_mask=mask, use_cache=False).last_hidden_state
        hidden = h[torch.arange(h.shape[0], device=dev), len_B - 1].float()
        return self.value_head(hidden).squeeze(-1)

    # -- what trains, what a checkpoint holds

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trained tensors only (adapters, heads; every LM weight under ``full``)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def head_parameters(self) -> list[nn.Parameter]:
        """The critic's parameters (they get ``lm.value_lr``)."""
        mods: list[nn.Module] = [self.value_head]
        if self.value_net is not None:
            mods.append(self.value_net)
        return [p for m in mods for p in m.parameters()]


def adapt_lm(
    lm: nn.Module, mode: str, *, r: int, alpha: float, dropout: float, targets: Sequence[str]
) -> nn.Module:
    """Prepare the LM for ``mode``: LoRA adapters (PEFT) on ``targets`` with the base frozen,
    every weight trainable (``full``), or all frozen (``frozen``)."""
    if mode not in MODES:
        raise ConfigError(f"lm.mode={mode!r} is not one of: {', '.join(MODES)}")
    for p in lm.parameters():
        p.requires_grad_(mode == "full")
    if mode == "lora":
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise ConfigError("lm.mode=lora needs peft: pip install 'drlzero[lm]'") from None
        present = {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
        missing = [t for t in targets if t not in present]
        if missing:
            known = ", ".join(t for t in LLAMA_PROJECTIONS if t in present) or sorted(present)[:8]
            raise ConfigError(
                f"lm.lora_targets {missing} are not modules of this model; known projections "
                f"include {known}"
            )
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
        lm = inject_adapter_in_model(cfg, lm)
        for n, p in lm.named_parameters():
            p.requires_grad_("lora_" in n)
    return lm


def count_params(net: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts (shared tensors counted once)."""
    seen: dict[int, tuple[int, bool]] = {}
    for p in net.parameters():
        seen[id(p)] = (p.numel(), p.requires_grad)
    return sum(n for n, g in seen.values() if g), sum(n for n, _ in seen.values())


# ---------------------------------------------------------------------------------------------
# Building it from a config


def build_lm_actor_critic(
    cfg: Any, num_actions: int, device: torch.device
) -> tuple[LMActorCritic, str]:
    """The LM actor-critic of ``cfg.lm`` on ``device``; returns (net, base-model SHA-256).

    On CUDA the LM may run under bf16 autocast and with gradient checkpointing (``lm.bf16``,
    ``lm.grad_checkpointing``); on CPU it stays float32 and plain.
    """
    from drlzero.lmpolicy.model import load_causal_lm, model_sha256

    c = cfg.lm
    lm, tok, path = load_causal_lm(c.model_path, trust_remote_code=c.trust_remote_code)
    lm.config.use_cache = True
    lm = adapt_lm(
        lm, c.mode, r=c.lora_r, alpha=c.lora_alpha, dropout=c.lora_dropout, targets=c.lora_targets
    )
    cuda = device.type == "cuda"
    if cuda and c.grad_checkpointing and c.mode != "frozen":
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    net = LMActorCritic(
        lm,
        tok,
        c.actions,
        num_actions=num_actions,
        normalize=c.normalize,
        critic=c.critic,
        action_head=c.mode == "frozen",
        header=c.header,
        footer=c.footer,
        autocast=cuda and c.bf16 and torch.cuda.is_bf16_supported(),
    )
    return net.to(device), model_sha256(str(path))
