"""The shared observation space of the text variants: one English sentence per step."""

from __future__ import annotations

import string

from gymnasium import spaces

#: Letters, digits, space and the punctuation the sentences use.
CHARSET = string.ascii_letters + string.digits + " .,:;%()+-/"


def text_space(max_length: int = 256) -> spaces.Text:
    """A :class:`gymnasium.spaces.Text` of at most ``max_length`` characters from CHARSET."""
    return spaces.Text(max_length=max_length, min_length=1, charset=CHARSET)
