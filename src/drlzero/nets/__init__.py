"""Networks apart from algorithms: every Q head and the Q network (:mod:`~drlzero.nets.heads`),
the noisy linear layer (:mod:`~drlzero.nets.noisy`), DRRN's network for text actions
(:mod:`~drlzero.nets.drrn`), the Q-network factory (:mod:`~drlzero.nets.factory`), PPO's
actor-critic (:mod:`~drlzero.nets.actor_critic`), SAC's actor and twin critics
(:mod:`~drlzero.nets.sac`), the LM policy's network (:mod:`~drlzero.nets.lm`), the action
distributions those heads define (:mod:`~drlzero.nets.distributions`), target networks that
share frozen weights (:mod:`~drlzero.nets.target`), and optimizer groups with a backbone
learning rate and warm-up (:mod:`~drlzero.nets.optim`). Encoders live in
:mod:`drlzero.encoders`. Nothing here imports :mod:`drlzero.algos`."""

from drlzero.nets.factory import build_q_network, uses_family
from drlzero.nets.optim import apply_warmup, count_trainable, param_groups
from drlzero.nets.target import make_target, shared_storage_bytes

__all__ = [
    "apply_warmup",
    "build_q_network",
    "count_trainable",
    "make_target",
    "param_groups",
    "shared_storage_bytes",
    "uses_family",
]
