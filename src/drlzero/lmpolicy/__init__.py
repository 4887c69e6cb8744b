"""The language model as the policy: loading the model (:mod:`.model`) and the evaluation
splits (:mod:`.splits`); the scoring and the learner are :mod:`drlzero.algos.lm_policy`, the
loop :mod:`drlzero.train.lm_onpolicy`."""
