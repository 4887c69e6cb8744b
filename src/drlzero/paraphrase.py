"""Mission paraphrases: rewrite a mission with templates, to test language generalisation.

A paraphrase file is JSON mapping a mission template with ``{slot}`` fields to a list of
paraphrase templates that use the same slots (BabyAI missions use ``{color}`` and ``{type}``)::

    {"go to the {color} {type}": ["walk up to the {color} {type}", "find the {color} {type}"]}

A key without slots is either a whole mission (``"go to the red ball": ["go to the crimson
sphere"]``: that exact mission is rewritten) or, when it is a single word, a *synonym*: each
occurrence of the word (whole words only) is replaced by one of its list, e.g.
``{"red": ["crimson"], "ball": ["sphere"]}`` makes "go to the red ball" "go to the crimson
sphere". Mission templates apply first, then word synonyms on the result. A mission that nothing
changes is left as it is (and counted in :attr:`Paraphraser.misses`).

Example:
    >>> p = Paraphraser({"go to the {color} {type}": ["find the {color} {type}"]}, seed=0)
    >>> p("go to the red ball")
    'find the red ball'
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from drlzero.errors import ConfigError

__all__ = ["Paraphraser", "load_paraphrases"]

_SLOT = re.compile(r"\{(\w+)\}")


def load_paraphrases(source: str | Path | dict) -> dict[str, list[str]]:
    """Read and check a paraphrase mapping (a JSON file path, or the mapping itself)."""
    if isinstance(source, dict):
        data, origin = source, "paraphrases"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"paraphrase file {path} not found; pass a JSON file")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"paraphrase file {path} is not valid JSON ({exc.msg})") from None
        origin = str(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{origin} must map mission templates to lists of paraphrases")
    out: dict[str, list[str]] = {}
    for template, paraphrases in data.items():
        if not isinstance(paraphrases, list) or not paraphrases:
            raise ConfigError(f"{origin}: {template!r} must map to a non-empty list of strings")
        slots = set(_SLOT.findall(template))
        for p in paraphrases:
            if not isinstance(p, str) or set(_SLOT.findall(p)) - slots:
                raise ConfigError(
                    f"{origin}: paraphrase {p!r} uses slots that {template!r} does not define"
                )
        out[str(template)] = [str(p) for p in paraphrases]
    return out


def _template_regex(template: str) -> re.Pattern[str]:
    parts = _SLOT.split(template)  # literal, slot, literal, slot, ...
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else rf"(?P<{part}>\w+(?: \w+)*?)"
        for i, part in enumerate(parts)
    )
    return re.compile(rf"^{pattern}$")


class Paraphraser:
    """Rewrites missions; each call picks one paraphrase of the matching template at random.

    Args:
        mapping: template -> paraphrase templates (see :func:`load_paraphrases`).
        seed: seed of the choice among paraphrases.
    """

    def __init__(self, mapping: dict[str, list[str]], seed: int = 0) -> None:
        rules = load_paraphrases(mapping)
        self.words = {t: ps for t, ps in rules.items() if _is_word(t)}
        self.rules = [(_template_regex(t), ps) for t, ps in rules.items() if t not in self.words]
        self.word_regex = (
            re.compile(r"\b(" + "|".join(re.escape(w) for w in self.words) + r")\b")
            if self.words
            else None
        )
        self.rng = np.random.default_rng(seed)
        self.misses = 0

    def _pick(self, options: list[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def __call__(self, mission: str) -> str:
        out = mission
        for regex, paraphrases in self.rules:
            m = regex.match(mission)
            if m is not None:
                out = self._pick(paraphrases).format(**m.groupdict())
                break
        if self.word_regex is not None:
            out = self.word_regex.sub(lambda m: self._pick(self.words[m.group(1)]), out)
        if out == mission:
            self.misses += 1
        return out


def _is_word(key: str) -> bool:
    """A synonym key: one word, no slots (``"red"``), as opposed to a mission template."""
    return bool(re.fullmatch(r"[\w-]+", key))
