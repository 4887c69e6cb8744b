"""Self-supervised pretraining of state encoders on trajectory datasets.

- :mod:`~drlzero.pretrain.obs_tokenizer`: vector/grid observations -> token ids for a BERT.
- :mod:`~drlzero.pretrain.dataset`: the rows the objectives read from a collected dataset,
  and a small generator.
- :mod:`~drlzero.pretrain.objectives`: masked-observation, inverse-dynamics and InfoNCE losses.
- :mod:`~drlzero.pretrain.trainer`: :func:`pretrain`, the ``drlzero pretrain`` command.

Submodules load on use: importing the package imports neither torch nor transformers.
"""
