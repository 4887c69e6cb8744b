"""Training loops, evaluation, logging, checkpoints and plots."""
