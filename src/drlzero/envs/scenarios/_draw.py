"""Tiny NumPy drawing helpers for ``rgb_array`` frames (no pygame).

Frames are ``(H, W, 3)`` uint8 arrays; coordinates are pixels with the origin at the top left.
"""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]


def canvas(height: int, width: int, color: Color = (255, 255, 255)) -> np.ndarray:
    """A blank ``(height, width, 3)`` uint8 frame filled with ``color``."""
    frame_HW3 = np.empty((height, width, 3), dtype=np.uint8)
    frame_HW3[:] = color
    return frame_HW3


def rect(frame: np.ndarray, top: float, left: float, bottom: float, right: float, color: Color):
    """Fill the rectangle [top, bottom) x [left, right), clipped to the frame."""
    h, w = frame.shape[:2]
    t, b = max(round(top), 0), min(round(bottom), h)
    lft, rgt = max(round(left), 0), min(round(right), w)
    if t < b and lft < rgt:
        frame[t:b, lft:rgt] = color


def disc(frame: np.ndarray, row: float, col: float, radius: float, color: Color) -> None:
    """Fill a disc centred at (row, col)."""
    h, w = frame.shape[:2]
    r0, r1 = max(int(row - radius), 0), min(int(row + radius) + 1, h)
    c0, c1 = max(int(col - radius), 0), min(int(col + radius) + 1, w)
    if r0 >= r1 or c0 >= c1:
        return
    rr, cc = np.ogrid[r0:r1, c0:c1]
    mask = (rr - row) ** 2 + (cc - col) ** 2 <= radius**2
    frame[r0:r1, c0:c1][mask] = color


def bar(frame: np.ndarray, top: int, left: int, height: int, width: int, frac: float, color: Color):
    """A horizontal gauge: a grey frame of ``width`` filled to ``frac`` in ``color``."""
    rect(frame, top, left, top + height, left + width, (210, 210, 210))
    rect(frame, top, left, top + height, left + width * float(np.clip(frac, 0.0, 1.0)), color)
