"""Where a frozen sentence encoder puts the synonym and held-out missions of BabyAI GoToLocal.

A policy that reads missions through a learned function of one pooled sentence embedding can
only treat "go to the crimson sphere" like "go to the red ball" if the two embeddings lie close.
For every synonym rewrite of a training mission (``tests/data/babyai_synonyms.json``) this finds
the nearest training mission by cosine similarity of all-MiniLM-L6-v2's mean-pooled embedding and
counts how often it is the mission rewritten, or shares its colour or its object. For the
held-out pairs (those ``lm_gotolocal_compare`` keeps out of training) it lists the nearest
training missions. No training; a few seconds on CPU.

    python benchmarks/lm_mission_neighbours.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _results import add_result_args, out_dir_for, write_result

from drlzero.encoders.pretrained import PretrainedEncoder
from drlzero.envs.text.tokenize import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SYNONYMS = ROOT / "tests" / "data" / "babyai_synonyms.json"
COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECTS = ("ball", "box", "key")  # GoTo missions name these (doors are not in GoToLocal)
HELD_OUT = (("red", "key"), ("green", "ball"))
MAX_TOKENS = 16


def main() -> None:
    ap = argparse.ArgumentParser()
    add_result_args(ap)
    args = ap.parse_args()
    tok = load_tokenizer("")
    enc = PretrainedEncoder((MAX_TOKENS,), mode="frozen")

    def unit_embeddings(texts: list[str]) -> np.ndarray:
        ids = np.full((len(texts), MAX_TOKENS), -1, np.int32)
        for i, text in enumerate(texts):
            raw = tok.encode(text, truncation=True, max_length=MAX_TOKENS)
            ids[i, : len(raw)] = raw
        emb = np.asarray(enc.preprocess(ids), np.float64)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    synonyms: dict[str, list[str]] = json.loads(SYNONYMS.read_text())
    train = [(c, o) for c in COLOURS for o in OBJECTS if (c, o) not in HELD_OUT]
    train_E = unit_embeddings([f"go to the {c} {o}" for c, o in train])
    rows = []
    for c, o in train:
        for cs in [c, *synonyms.get(c, [])]:
            for os_ in [o, *synonyms.get(o, [])]:
                if (cs, os_) == (c, o):
                    continue
                sims = train_E @ unit_embeddings([f"go to the {cs} {os_}"])[0]
                near = train[int(np.argmax(sims))]
                rows.append({"mission": (c, o), "rewrite": (cs, os_), "nearest": near})
    n = len(rows)
    summary = {
        "rewrites": n,
        "nearest_is_the_mission": sum(r["nearest"] == r["mission"] for r in rows) / n,
        "nearest_has_its_colour": sum(r["nearest"][0] == r["mission"][0] for r in rows) / n,
        "nearest_has_its_object": sum(r["nearest"][1] == r["mission"][1] for r in rows) / n,
    }
    held = {}
    for c, o in HELD_OUT:
        sims = train_E @ unit_embeddings([f"go to the {c} {o}"])[0]
        top = np.argsort(-sims)[:3]
        held[f"{c} {o}"] = [{"mission": train[i], "cosine": float(sims[i])} for i in top]
    print(
        f"{n} synonym rewrites: the nearest training mission is the one rewritten "
        f"{summary['nearest_is_the_mission']:.2f}, has its colour "
        f"{summary['nearest_has_its_colour']:.2f}, its object "
        f"{summary['nearest_has_its_object']:.2f}"
    )
    for pair, near in held.items():
        listed = ", ".join(f"{' '.join(m['mission'])} ({m['cosine']:.3f})" for m in near)
        print(f"held-out {pair}: nearest {listed}")
    payload = {"summary": summary, "held_out_nearest": held, "rows": rows}
    path = write_result("lm_mission_neighbours", "gotolocal", payload, out_dir=out_dir_for(args))
    print("wrote", path)


if __name__ == "__main__":
    main()
