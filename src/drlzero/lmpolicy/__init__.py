"""The language model as the policy: loading the model (:mod:`.model`), the evaluation splits
(:mod:`.splits`) and what ``algo: lmppo`` plugs into the PPO loop (:mod:`.agent`); the network
(the scoring) is :mod:`drlzero.nets.lm`, the acting side and the learner
:mod:`drlzero.algos.lm_policy`, the loop :mod:`drlzero.train.onpolicy`."""
