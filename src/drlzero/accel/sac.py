"""The fast SAC learner: :class:`~drlzero.algos.sac.SACLearner`'s steps with less overhead.

- The actor's and the critics' weights live in one flat tensor each
  (:class:`~drlzero.accel.flat.FlatParams`), so zeroing, the fused Adam step and the Polyak
  step of the target critics are one kernel each instead of one per weight tensor.
- The twin critics (MLPs reading ``[s, a]``) run as one batched network: their weights are
  stored layer by layer, critic 1 then critic 2, so each layer's pair is a contiguous
  ``(2, out, in)`` view and both critics cost one ``baddbmm`` per layer. Forward and backward
  then make half the kernel calls and autograd nodes for the same arithmetic.
- The actor runs as a flat traced forward (:func:`~drlzero.accel.trace.flat_forward`).
- When the actor and both critics are ReLU MLPs (the default networks), the critic step and
  the actor step compute their gradients by hand (:class:`_ManualGrads`): the chain rule of
  the same losses, written into preallocated activations and straight into the flat grads.
  That skips the autograd graph (node creation and the engine, ~2/3 of the ops of a step)
  and the zeroing, and allocates no large tensor per step: glibc returns freed large blocks
  to the kernel, so fresh ones cost a page fault per 4 KiB on first touch.

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


def _relu_mlp_actor(actor: TanhGaussianActor) -> list[nn.Linear] | None:
    """The actor encoder's Linear layers when it is ``Flatten -> (Linear -> ReLU) x k`` with
    biased heads (the layout :class:`_ManualGrads` differentiates); else None."""
    enc = actor.encoder
    if not isinstance(enc, MLPEncoder):
        return None
    mods = list(enc.net)
    body = mods[1:]
    lins = body[0::2]
    if not (
        mods
        and isinstance(mods[0], nn.Flatten)
        and len(body) % 2 == 0
        and all(isinstance(m, nn.Linear) and m.bias is not None for m in lins)
        and all(isinstance(m, nn.ReLU) for m in body[1::2])
        and actor.mean.bias is not None
        and actor.log_std.bias is not None
    ):
        return None
    return lins  # type: ignore[return-value]


# weight, bias and their gradients (views of the flat grad) of one actor Linear
_Lin = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class _ManualGrads:
    """The gradients of the critic step and of the actor step by the chain rule, for ReLU MLPs.

    Every activation lives in a buffer kept from step to step, and every gradient is written
    into its slice of the flat grad (``out=``), which therefore needs no zeroing.

    Critics, both at once over stacked ``(2, out, in)`` weights: ``z_l = h_{l-1} W_l^T + b_l``,
    ``h_l = relu(z_l)``, ``Q = z_L``, ``h_0 = [s, a]``. With ``delta_l = dL/dz_l``:
    ``dL/dW_l = delta_l^T h_{l-1}``, ``dL/db_l = sum_B delta_l`` and
    ``delta_{l-1} = (delta_l W_l) [h_{l-1} > 0]``. The critic loss
    ``MSE(Q1, y) + MSE(Q2, y)`` starts it with ``delta_L = 2 (Q - y) / B``.

    Actor: features ``h`` by the same recursion, heads ``m`` and ``r``, ``ls = clamp(r)``,
    ``u = m + exp(ls) eps``, ``a = tanh(u)`` and
    ``log pi = sum_A [log N(u; m, exp(ls)) - log(1 - a^2)]``. For
    ``L = mean_B(alpha log pi - min(Q1, Q2)(s, a))``:

    - ``dL/da`` comes back through the frozen critics to their input, from
      ``dL/dQ_i = -1/B`` on the smaller critic (a tie splits it, as autograd's ``minimum``);
    - ``dL/du = dL/da (1 - a^2) + 2 a alpha / B``, as ``d log(1 - tanh(u)^2)/du = -2 tanh(u)``;
    - ``dL/dm = dL/du`` and ``dL/dr = (dL/du exp(ls) eps - alpha / B) [r inside the clamp]``.

    ``log N`` adds nothing else: ``u - m = exp(ls) eps`` holds ``eps`` fixed, so only its
    ``-ls`` term depends on the weights. (Autograd differentiates the Gaussian term's pieces
    separately and lets them cancel; near the clamp's floor, std = e^-20, ``u - m`` rounds
    away next to ``m`` and they no longer do. The formula has no such loss.)
    """

    def __init__(
        self,
        critic: list[torch.Tensor],
        critic_grad: list[torch.Tensor],
        encoder: list[_Lin],
        mean: _Lin,
        log_std: _Lin,
    ) -> None:
        self.cw, self.cg = critic, critic_grad  # [W_1, b_1, W_2, b_2, ...], stacked
        self.encoder, self.mean, self.log_std = encoder, mean, log_std
        self.obs_dim = int(critic[0].shape[2]) - int(mean[0].shape[0])
        self._bufs: dict[str, torch.Tensor] = {}

    def _buf(self, key: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        t = self._bufs.get(key)
        if t is None or t.shape != shape or t.device != like.device:
            t = self._bufs[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return t

    def critic_input(self, obs: torch.Tensor, a_BA: torch.Tensor) -> torch.Tensor:
        s_BS = obs.float().flatten(1)
        x = self._buf("x", (s_BS.shape[0], s_BS.shape[1] + a_BA.shape[1]), s_BS)
        return torch.cat([s_BS, a_BA], dim=1, out=x)

    def critic_forward(self, weights: list[torch.Tensor], x_BI: torch.Tensor) -> list[torch.Tensor]:
        """``[h_0, h_1, ..., Q]`` of both critics, each ``(2, B, width)``; ``Q`` is (2, B, 1)."""
        hs = [x_BI.unsqueeze(0).expand(2, -1, -1)]
        last = len(weights) // 2 - 1
        for i in range(last + 1):
            w, b = weights[2 * i], weights[2 * i + 1]
            h = self._buf(f"qh{i}", (2, x_BI.shape[0], w.shape[1]), x_BI)
            torch.baddbmm(b, hs[-1], w.transpose(1, 2), out=h)
            hs.append(h.relu_() if i < last else h)
        return hs

    def _critic_backward(
        self, hs: list[torch.Tensor], delta: torch.Tensor, grads: list[torch.Tensor] | None
    ) -> torch.Tensor:
        """Back from ``delta = dL/dQ`` (2, B, 1): weight grads into ``grads`` (when given);
        returns ``dL/dz_1``."""
        w = self.cw
        for i in range(len(w) // 2 - 1, -1, -1):
            if grads is not None:
                torch.bmm(delta.transpose(1, 2), hs[i], out=grads[2 * i])
                torch.sum(delta, 1, keepdim=True, out=grads[2 * i + 1])
            if i == 0:
                break
            dh = self._buf(f"qd{i}", tuple(hs[i].shape), delta)
            torch.bmm(delta, w[2 * i], out=dh)
            delta = torch.ops.aten.threshold_backward.grad_input(dh, hs[i], 0.0, grad_input=dh)
        return delta

    def critic_grads(
        self, x_BI: torch.Tensor, y_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of ``MSE(Q1, y) + MSE(Q2, y)``; returns the loss and Q1."""
        hs = self.critic_forward(self.cw, x_BI)
        q = hs[-1]
        q1_B = q[0, :, 0].clone()
        d = q - y_B.view(1, -1, 1)
        loss = d.square().mean(1).sum()
        self._critic_backward(hs, d.mul_(2.0 / d.shape[1]), self.cg)
        return loss, q1_B

    def actor_forward(
        self, s_BS: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The encoder's activations ``[s, h_1, ..., h_k]`` and the heads' outputs (B, A)."""
        hs = [s_BS]
        for i, (w, b, _, _) in enumerate(self.encoder):
            h = self._buf(f"ah{i}", (s_BS.shape[0], w.shape[0]), s_BS)
            hs.append(torch.addmm(b, hs[-1], w.t(), out=h).relu_())
        A = self.mean[0].shape[0]
        m = torch.addmm(
            self.mean[1], hs[-1], self.mean[0].t(), out=self._buf("am", (s_BS.shape[0], A), s_BS)
        )
        r = torch.addmm(
            self.log_std[1],
            hs[-1],
            self.log_std[0].t(),
            out=self._buf("ar", (s_BS.shape[0], A), s_BS),
        )
        return hs, m, r

    def actor_grads(
        self, s_BS: torch.Tensor, alpha: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of the actor loss on fresh actions; returns the loss and log pi (B,)."""
        hs, m_BA, r_BA = self.actor_forward(s_BS)
        ls_BA = r_BA.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std_BA = ls_BA.exp()
        eps_BA = torch.randn_like(m_BA)
        u_BA = m_BA + std_BA * eps_BA
        a_BA = torch.tanh(u_BA)
        logp_B = tanh_gaussian_log_prob(u_BA, m_BA, ls_BA)
        q = self.critic_forward(self.cw, self.critic_input(s_BS, a_BA))
        q1, q2 = q[-1][0], q[-1][1]  # (B, 1)
        loss = (alpha * logp_B - torch.minimum(q1, q2).squeeze(1)).mean()
        B = s_BS.shape[0]
        w1 = (q1 < q2).to(q1.dtype) + 0.5 * (q1 == q2).to(q1.dtype)
        delta = torch.stack([w1, 1.0 - w1]).mul_(-1.0 / B)  # dL/dQ_i, (2, B, 1)
        d1 = self._critic_backward(q, delta, None)
        da_BA = torch.bmm(d1, self.cw[0][:, :, self.obs_dim :]).sum(0)
        du_BA = da_BA * (1.0 - a_BA * a_BA) + (2.0 / B) * alpha * a_BA
        inside = (r_BA >= LOG_STD_MIN) & (r_BA <= LOG_STD_MAX)
        dr_BA = (du_BA * std_BA * eps_BA - alpha / B) * inside
        h = hs[-1]
        (wm, _, gwm, gbm), (ws, _, gws, gbs) = self.mean, self.log_std
        torch.mm(du_BA.t(), h, out=gwm)
        torch.sum(du_BA, 0, out=gbm)
        torch.mm(dr_BA.t(), h, out=gws)
        torch.sum(dr_BA, 0, out=gbs)
        dh = torch.mm(du_BA, wm, out=self._buf(f"ad{len(self.encoder)}", tuple(h.shape), h))
        dh.addmm_(dr_BA, ws)
        for i in range(len(self.encoder) - 1, -1, -1):
            w, _, gw, gb = self.encoder[i]
            torch.ops.aten.threshold_backward.grad_input(dh, hs[i + 1], 0.0, grad_input=dh)
            torch.mm(dh.t(), hs[i], out=gw)
            torch.sum(dh, 0, out=gb)
            if i > 0:
                dh = torch.mm(dh, w, out=self._buf(f"ad{i}", tuple(hs[i].shape), dh))
        return loss, logp_B


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
        self.manual: _ManualGrads | None = None
        lins = _relu_mlp_actor(actor)
        if self.twin is not None and lins is not None:
            grad_of = {id(p): g for p, g in self.actor_flat._views}

            def lin(m: nn.Linear) -> _Lin:
                b = m.bias
                assert b is not None
                return (m.weight.detach(), b.detach(), grad_of[id(m.weight)], grad_of[id(b)])

            self.manual = _ManualGrads(
                self.q_frozen,
                self.twin.stacked(flat.grad, None),
                [lin(m) for m in lins],
                lin(actor.mean),
                lin(actor.log_std),
            )

    # -- how each piece is computed; the steps themselves are the parent's ----------------------
    def _q(
        self, which: str, obs: torch.Tensor, a_BA: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q1, Q2)`` of the online critics (``online``), the same without weight grads
        (``frozen``) or the target critics (``target``), batched when the layout allows."""
        if self.twin is None:
            return super()._q(which, obs, a_BA)
        if self.manual is not None and which == "target":  # into the kept buffers
            q = self.manual.critic_forward(self.q_target, self.manual.critic_input(obs, a_BA))[-1]
            return q[0, :, 0], q[1, :, 0]
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
        if self.manual is not None and not torch.is_grad_enabled():  # the target's actions
            _, mean_BA, raw_BA = self.manual.actor_forward(obs.float().flatten(1))
            log_std_BA = raw_BA.clamp(LOG_STD_MIN, LOG_STD_MAX)
        else:
            if self._actor_fwd is None:
                self._actor_fwd = flat_forward(self.actor.encoder, obs[:1])
            h_BD = self._actor_fwd(obs)
            mean_BA = self.actor.mean(h_BD)
            log_std_BA = self.actor.log_std(h_BD).clamp(LOG_STD_MIN, LOG_STD_MAX)
        u_BA = mean_BA + log_std_BA.exp() * torch.randn_like(mean_BA)
        return torch.tanh(u_BA), tanh_gaussian_log_prob(u_BA, mean_BA, log_std_BA)

    def _critic_backward(
        self, obs: torch.Tensor, a_BA: torch.Tensor, y_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.manual is None:
            return super()._critic_backward(obs, a_BA, y_B)
        return self.manual.critic_grads(self.manual.critic_input(obs, a_BA), y_B)

    def _actor_backward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.manual is None:
            return super()._actor_backward(obs)
        return self.manual.actor_grads(obs.float().flatten(1), self.alpha)

    def _zero_grad(self, which: str) -> None:
        (self.actor_flat if which == "actor" else self.critic_flat).zero_grad()

    def _polyak(self) -> None:
        """One lerp of the flat target vector (the critics have no buffers)."""
        self.target_vec.lerp_(self.critic_flat.param.detach(), self.cfg.tau)
