"""The fast SAC learner: :class:`~drlzero.algos.sac.SACLearner`'s steps with less overhead.

- The actor's and the critics' weights live in one flat tensor each
  (:class:`~drlzero.accel.flat.FlatParams`), so zeroing, the fused Adam step and the Polyak
  step of the target critics are one kernel each instead of one per weight tensor.
- The twin critics (MLPs reading ``[s, a]``) run as one batched network: their weights are
  stored layer by layer, critic 1 then critic 2, so each layer's pair is a contiguous
  ``(2, out, in)`` view and both critics cost one ``baddbmm`` per layer. Forward and backward
  then make half the kernel calls and autograd nodes for the same arithmetic.
- The actor runs as a flat traced forward (:func:`~drlzero.accel.trace.flat_forward`).

What is computed is the parent's: :class:`FastSACLearner` overrides only the parent's hooks
(how the critics, the actor's samples, the zeroing and the Polyak step are computed), never its
``update``, so both learners give the same weights up to float rounding (``tests/test_sac.py``).
Critics of another shape (images, sequences, a shared encoder) keep the module calls and get
the flat parameters only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from drlzero.accel.flat import FlatParams
from drlzero.accel.trace import flat_forward
from drlzero.algos.sac import SACLearner
from drlzero.config import SACConfig
from drlzero.encoders.mlp import MLPEncoder
from drlzero.nets.distributions import tanh_gaussian_log_prob
from drlzero.nets.sac import LOG_STD_MAX, LOG_STD_MIN, TanhGaussianActor, TwinQ

# (offset into the flat vector, out features, in features) of one layer's stacked weight and
# the offset of its stacked bias
_Layer = tuple[int, int, int, int]


def _twin_linears(critic: TwinQ) -> list[tuple[nn.Linear, nn.Linear]] | None:
    """The critics' Linear layers paired layer by layer, when both are ReLU MLPs over
    ``[s, a]`` of the same shape (the layout the batched forward computes); else None."""
    pairs: list[tuple[nn.Linear, nn.Linear]] = []
    for q in (critic.q1, critic.q2):
        enc = q.encoder
        if not (q.joint and isinstance(enc, MLPEncoder) and isinstance(q.head, nn.Linear)):
            return None
        mods = list(enc.net)[1:]  # after the Flatten: Linear, act, Linear, act, ...
        if not all(isinstance(m, nn.ReLU) for m in mods[1::2]):
            return None
    l1 = [m for m in critic.q1.encoder.net if isinstance(m, nn.Linear)] + [critic.q1.head]
    l2 = [m for m in critic.q2.encoder.net if isinstance(m, nn.Linear)] + [critic.q2.head]
    for a, b in zip(l1, l2, strict=True):
        if a.weight.shape != b.weight.shape or a.bias is None or b.bias is None:
            return None
        pairs.append((a, b))  # type: ignore[arg-type]
    return pairs


class _TwinMLP:
    """Both critics as one batched MLP: per layer ``h <- relu(b + h W^T)`` for both critics in
    one ``baddbmm``, over stacked ``(2, out, in)`` weights and ``(2, 1, out)`` biases.

    The stacked tensors are leaf parameters whose storage (and grad storage) are slices of the
    flat vectors, so autograd accumulates straight into the flat grad; a slice taken inside
    the graph would instead back-propagate through a zero-filled copy of the whole vector.
    """

    def __init__(self, pairs: list[tuple[nn.Linear, nn.Linear]]) -> None:
        self.order: list[nn.Parameter] = []
        self.shapes: list[tuple[int, int]] = []
        for a, b in pairs:
            self.order += [a.weight, b.weight, a.bias, b.bias]  # type: ignore[list-item]
            self.shapes.append(tuple(a.weight.shape))  # type: ignore[arg-type]

    def stacked(self, flat: torch.Tensor, grad: torch.Tensor | None) -> list[torch.Tensor]:
        """Per layer the stacked weight and bias as views of ``flat`` (leaves with their
        grads viewing ``grad`` when given, plain views otherwise)."""
        out: list[torch.Tensor] = []
        off = 0
        for out_f, in_f in self.shapes:
            for shape in ((2, out_f, in_f), (2, 1, out_f)):
                k = shape[0] * shape[1] * shape[2]
                view = flat[off : off + k].view(shape)
                if grad is not None:
                    leaf = nn.Parameter(view)
                    leaf.grad = grad[off : off + k].view(shape)
                    view = leaf
                out.append(view)
                off += k
        return out

    @staticmethod
    def forward(
        params: list[torch.Tensor], x_BI: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q1, Q2)``, each (B,), from the stacked ``params`` of :meth:`stacked`."""
        h = x_BI.unsqueeze(0).expand(2, -1, -1)  # (2, B, in)
        last = len(params) // 2 - 1
        for i in range(last + 1):
            h = torch.baddbmm(params[2 * i + 1], h, params[2 * i].transpose(1, 2))
            if i < last:
                h = torch.relu(h)
        q = h.squeeze(2)  # (2, B)
        return q[0], q[1]


class FastSACLearner(SACLearner):
    """:class:`~drlzero.algos.sac.SACLearner` on flat weights, fused Adam, a batched twin
    critic and a traced actor (the module docstring says why each helps)."""

    def __init__(
        self,
        actor: TanhGaussianActor,
        critic: TwinQ,
        critic_target: TwinQ,
        cfg: SACConfig,
        action_dim: int,
    ) -> None:
        super().__init__(actor, critic, critic_target, cfg, action_dim)
        pairs = _twin_linears(critic)
        self.twin = _TwinMLP(pairs) if pairs is not None else None
        critic_order = self.twin.order if self.twin else list(critic.parameters())
        self.critic_flat = FlatParams(critic_order)
        self.actor_flat = FlatParams(list(actor.parameters()))
        # The target critics in the same layout, as views of one plain tensor (no grads).
        by_id = dict(zip(map(id, critic.parameters()), critic_target.parameters(), strict=True))
        target_order = [by_id[id(p)] for p in critic_order]
        with torch.no_grad():
            self.target_vec = torch.cat([p.detach().reshape(-1) for p in target_order])
        off = 0
        for p in target_order:
            k = p.numel()
            p.data = self.target_vec[off : off + k].view_as(p)
            off += k
        eps = cfg.adam_eps
        self.actor_opt = torch.optim.Adam(
            [self.actor_flat.param], lr=cfg.actor_lr, eps=eps, fused=True
        )
        self.critic_opt = torch.optim.Adam(
            [self.critic_flat.param], lr=cfg.critic_lr, eps=eps, fused=True
        )
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, eps=eps, fused=True)
        self._actor_fwd: Callable[[torch.Tensor], torch.Tensor] | None = None
        if self.twin is not None:
            flat = self.critic_flat.param
            self.q_params = self.twin.stacked(flat.data, flat.grad)
            self.q_frozen = self.twin.stacked(flat.data, None)  # for the actor step
            self.q_target = self.twin.stacked(self.target_vec, None)

    # -- how each piece is computed; the steps themselves are the parent's ----------------------
    def _q(
        self, which: str, obs: torch.Tensor, a_BA: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q1, Q2)`` of the online critics (``online``), the same without weight grads
        (``frozen``) or the target critics (``target``), batched when the layout allows."""
        if self.twin is None:
            return super()._q(which, obs, a_BA)
        params = {"online": self.q_params, "frozen": self.q_frozen, "target": self.q_target}
        return self.twin.forward(params[which], torch.cat([obs.float().flatten(1), a_BA], dim=1))

    @contextlib.contextmanager
    def _critic_frozen(self) -> Iterator[None]:
        if self.twin is None:  # module forwards: the parent's switch
            with super()._critic_frozen():
                yield
        else:  # the batched forward reads detached views of the weights ("frozen")
            yield

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`~drlzero.nets.sac.TanhGaussianActor.sample`, with the encoder's traced
        forward."""
        if self._actor_fwd is None:
            self._actor_fwd = flat_forward(self.actor.encoder, obs[:1])
        h_BD = self._actor_fwd(obs)
        mean_BA = self.actor.mean(h_BD)
        log_std_BA = self.actor.log_std(h_BD).clamp(LOG_STD_MIN, LOG_STD_MAX)
        u_BA = mean_BA + log_std_BA.exp() * torch.randn_like(mean_BA)
        return torch.tanh(u_BA), tanh_gaussian_log_prob(u_BA, mean_BA, log_std_BA)

    def _zero_grad(self, which: str) -> None:
        (self.actor_flat if which == "actor" else self.critic_flat).zero_grad()

    def _polyak(self) -> None:
        """One lerp of the flat target vector (the critics have no buffers)."""
        self.target_vec.lerp_(self.critic_flat.param.detach(), self.cfg.tau)
