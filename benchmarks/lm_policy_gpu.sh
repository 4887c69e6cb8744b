#!/usr/bin/env bash
# GLAM's budget for the LM policy, for a machine with a GPU (not run on the 2-core CPU: there
# it would take weeks). LoRA PPO with SmolLM2-135M-Instruct on BabyAI GoToObj and GoToLocal,
# bf16 autocast and gradient checkpointing on CUDA (lm.bf16, lm.grad_checkpointing), then the
# generalisation splits and the zero-shot figures on the same episodes.
#
# Usage: bash benchmarks/lm_policy_gpu.sh [STEPS]   (default 250000 env steps, GLAM's 0.8 mark)
set -euo pipefail
STEPS="${1:-250000}"
OUT="${OUT:-runs/lm-policy-gpu}"
SYN="$(dirname "$0")/lm_policy_synonyms.json"
mkdir -p "$OUT"
for LEVEL in gotoobj gotolocal; do
  drlzero train "babyai-${LEVEL}-lmpolicy" --device auto --total-steps "$STEPS" \
    --out "$OUT/$LEVEL" env.num_envs=32 ppo.n_steps=64 ppo.num_minibatches=8 \
    lm.micro_batch=64 train.threads=4 train.eval_freq=25000 train.eval_episodes=100 \
    train.checkpoint_freq=25000
  drlzero eval "$OUT/$LEVEL" --episodes 200 --action-synonyms "$SYN" --json \
    > "$OUT/$LEVEL/eval_synonyms.json"
  drlzero eval --zero-shot "babyai-${LEVEL}-lmpolicy" --episodes 200 --json \
    > "$OUT/$LEVEL/zero_shot.json"
done
