"""Peak memory and trainable parameters of each fine-tuning mode (issue 4), all-MiniLM-L6-v2.

Each mode runs in its own process: build the Q-network, its target (``make_target``: frozen
weights shared, LoRA base shared, full fine-tuning copied or shared), the optimizer, then a few
DQN updates on batch 32 of 48-token texts. Reports the process's peak resident memory (CPU;
``torch.cuda.max_memory_allocated`` on CUDA), distinct weight storage of online + target, and
trainable parameters.

Usage:
    python benchmarks/lm_memory.py

Raw figures per mode go to ``benchmarks/results/lm_memory/lm_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from _results import add_result_args, out_dir_for, write_result

MODES = [
    ("frozen", {"mode": "frozen", "cache": False}),
    ("frozen + cache", {"mode": "frozen", "cache": True}),
    ("lora r=8 (query, value)", {"mode": "lora"}),
    ("top_k=1", {"mode": "top_k", "top_k": 1}),
    ("full, target copy", {"mode": "full", "target_share": "copy"}),
    ("full, target shares encoder", {"mode": "full", "target_share": "share"}),
]


def child(spec: dict) -> None:
    import numpy as np
    import torch

    from drlzero.algos.dqn import DQNLearner
    from drlzero.config import DQNConfig
    from drlzero.encoders.pretrained import PretrainedEncoder
    from drlzero.nets import count_trainable, make_target, param_groups, shared_storage_bytes
    from drlzero.nets.heads import LinearHead, QNetwork
    from drlzero.replay.storage import Batch

    torch.set_num_threads(1)
    share = spec.pop("target_share", "copy") == "share"
    enc = PretrainedEncoder((48,), **spec)
    q = QNetwork(enc, LinearHead(enc.features_dim, 7))
    target = make_target(q, share_encoder=share)
    learner = DQNLearner(q, target, DQNConfig(), param_groups(q, 5e-4, 5e-5))
    rng = np.random.default_rng(0)
    ids = np.full((32, 48), -1, np.int32)
    ids[:, :30] = rng.integers(1000, 5000, (32, 30))
    obs = torch.from_numpy(enc.preprocess(ids))
    batch = Batch(obs, torch.zeros(32, dtype=torch.long), torch.ones(32), obs, torch.zeros(32))
    for _ in range(3):
        learner.update(batch)
    print(
        json.dumps(
            {
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "weights_mb": shared_storage_bytes(q, target) / 2**20,
                "trainable": count_trainable(q),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_result_args(ap)
    args = ap.parse_args()
    modes = [MODES[2]] if args.smoke else MODES  # smoke: LoRA (a frozen base plus adapters)
    rows = {}
    print("| mode | trainable params | online+target weights (MB) | peak RSS (MB) |")
    print("|---|---|---|---|")
    for name, spec in modes:
        out = (
            subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        r = json.loads(out)
        rows[name] = {"spec": spec, **r}
        print(f"| {name} | {r['trainable']:,} | {r['weights_mb']:.1f} | {r['peak_rss_mb']:.0f} |")
    print(
        "wrote", write_result("lm_memory", "lm_memory", {"modes": rows}, out_dir=out_dir_for(args))
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
