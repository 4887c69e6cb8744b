"""The language model as the policy: loading the model (:mod:`.model`), the evaluation splits
(:mod:`.splits`) and what ``algo: lmppo`` plugs into the PPO loop (:mod:`.agent`); the scoring
and the learner are :mod:`drlzero.algos.lm_policy`, the loop :mod:`drlzero.train.onpolicy`."""
