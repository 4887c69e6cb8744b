"""Where a frozen sentence encoder puts the synonym and held-out missions of BabyAI GoToLocal.

A policy that reads missions through a learned function of one pooled sentence embedding can
only treat "go to the crimson sphere" like "go to the red ball" if the two embeddings lie close.
For every synonym rewrite of a training mission (``tests/data/babyai_synonyms.json``) this finds
the nearest training mission by cosine similarity of all-MiniLM-L6-v2's mean-pooled embedding and
counts how often it is the mission rewritten, or shares its colour or its object. For the
held-out pairs (those ``lm_gotolocal_compare`` keeps out of training) it lists the nearest
training missions. It also counts how often ``encoder.fusion=ground``'s word match
(:class:`drlzero.encoders.multimodal.WordGrounder`) grounds a rewrite to the colour and object
it rewrote, and which grid word each synonym grounds to: what a policy that acts on the grounded
cells can at best keep on the synonym split. Against it, the same rule with string identity in
place of the model's cosine (a grid word scores 1 when the mission holds it, else 0; ties go to
the lowest value, as argmax does): what grounding without any pretrained knowledge gets right.
No training; a few seconds on CPU.

    python benchmarks/lm_mission_neighbours.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _results import add_result_args, out_dir_for, write_result

from drlzero.encoders.multimodal import WordGrounder, minigrid_words
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

    def token_ids(texts: list[str]) -> np.ndarray:
        ids = np.full((len(texts), MAX_TOKENS), -1, np.int32)
        for i, text in enumerate(texts):
            raw = tok.encode(text, truncation=True, max_length=MAX_TOKENS)
            ids[i, : len(raw)] = raw
        return ids

    def unit_embeddings(texts: list[str]) -> np.ndarray:
        emb = np.asarray(enc.preprocess(token_ids(texts)), np.float64)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    words = minigrid_words()
    grounder = WordGrounder(enc, words)
    names = {ch: dict(vals) for ch, vals in words.items()}
    synonyms: dict[str, list[str]] = json.loads(SYNONYMS.read_text())

    def string_ground(word: str, group: dict[int, str]) -> str:
        return next((n for _, n in sorted(group.items()) if n == word), min(group.items())[1])

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
                obj_v, col_v = grounder.ground(token_ids([f"go to the {cs} {os_}"]))[0]
                grounded = (names[1][int(col_v)], names[0][int(obj_v)])
                rows.append(
                    {
                        "mission": (c, o),
                        "rewrite": (cs, os_),
                        "nearest": near,
                        "grounded": grounded,
                        "string_grounded": (
                            string_ground(cs, names[1]),
                            string_ground(os_, names[0]),
                        ),
                    }
                )
    n = len(rows)
    summary = {
        "rewrites": n,
        "nearest_is_the_mission": sum(r["nearest"] == r["mission"] for r in rows) / n,
        "nearest_has_its_colour": sum(r["nearest"][0] == r["mission"][0] for r in rows) / n,
        "nearest_has_its_object": sum(r["nearest"][1] == r["mission"][1] for r in rows) / n,
        "grounded_to_the_mission": sum(r["grounded"] == r["mission"] for r in rows) / n,
        "grounded_colour": sum(r["grounded"][0] == r["mission"][0] for r in rows) / n,
        "grounded_object": sum(r["grounded"][1] == r["mission"][1] for r in rows) / n,
        "string_grounded_to_the_mission": sum(r["string_grounded"] == r["mission"] for r in rows)
        / n,
    }
    # Each synonym alone, in a mission whose other word is exact: the grid word it grounds to.
    word_ground = {}
    for canon, alts in synonyms.items():
        for alt in alts:
            text = f"go to the {alt} key" if canon in COLOURS else f"go to the red {alt}"
            obj_v, col_v = grounder.ground(token_ids([text]))[0]
            word_ground[alt] = names[1 if canon in COLOURS else 0][
                int(col_v if canon in COLOURS else obj_v)
            ]
    right = [
        alt
        for alt, got in word_ground.items()
        if any(got == c and alt in a for c, a in synonyms.items())
    ]
    summary["synonym_words_grounded_right"] = len(right) / len(word_ground)
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
    print(
        f"ground fusion's word match: {summary['grounded_to_the_mission']:.2f} of the rewrites "
        f"ground to their mission (colour {summary['grounded_colour']:.2f}, object "
        f"{summary['grounded_object']:.2f}; string identity instead: "
        f"{summary['string_grounded_to_the_mission']:.2f}); synonym words grounded right "
        f"{len(right)}/{len(word_ground)}: "
        + ", ".join(f"{alt}->{got}" for alt, got in word_ground.items())
    )
    for pair, near in held.items():
        listed = ", ".join(f"{' '.join(m['mission'])} ({m['cosine']:.3f})" for m in near)
        print(f"held-out {pair}: nearest {listed}")
    payload = {
        "summary": summary,
        "held_out_nearest": held,
        "synonym_grounded_to": word_ground,
        "rows": rows,
    }
    path = write_result("lm_mission_neighbours", "gotolocal", payload, out_dir=out_dir_for(args))
    print("wrote", path)


if __name__ == "__main__":
    main()
