"""A tiny embedded 5 x 7 bitmap font (digits, a few capitals, punctuation): no font files, no PIL."""

from __future__ import annotations

from functools import cache

import numpy as np

GLYPH_H, GLYPH_W = 7, 5

_GLYPHS = {
    "0": ".###.#...##..###.#.###..##...#.###.",
    "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####",
    "3": "#####...#...#...###.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.",
    "5": "#####....#####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.",
    "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.",
    "9": ".###.#...##...#.####....#...#..##..",
    "A": ".###.#...##...#######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.",
    "D": "###..#..#.#...##...##...##..#.###..",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####",
    "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##...##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".####.....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "V": "#...##...##...##...##...#.#.#...#..",
    "X": "#...##...#.#.#...#...#.#.#...##...#",
    ".": "..............................##...",
    "-": "...............###.................",
    "/": "....#....#...#...#...#....#....#...",
    " ": "." * 35,
}


@cache
def _glyph(ch: str) -> np.ndarray:
    bits = _GLYPHS.get(ch, _GLYPHS[" "]).ljust(GLYPH_H * GLYPH_W, ".")[: GLYPH_H * GLYPH_W]
    return (np.frombuffer(bits.encode(), np.uint8) == ord("#")).astype(np.float32).reshape(GLYPH_H, GLYPH_W)


def text_bitmap(text: str, k: int = 1, rotate: bool = False) -> np.ndarray:
    """Ink mask of `text` at integer zoom `k`; rotated 90 degrees counter-clockwise when `rotate`.

    Shape: (7k, 6k * len(text) - k), or transposed when rotated. Values in {0, 1}, float32.
    """
    gap = np.zeros((GLYPH_H, 1), np.float32)
    parts: list[np.ndarray] = []
    for i, ch in enumerate(text.upper()):
        if i:
            parts.append(gap)
        parts.append(_glyph(ch))
    bm = np.concatenate(parts, axis=1) if parts else np.zeros((GLYPH_H, 0), np.float32)
    if k > 1:
        bm = np.kron(bm, np.ones((k, k), np.float32))
    return np.ascontiguousarray(np.rot90(bm)) if rotate else bm
