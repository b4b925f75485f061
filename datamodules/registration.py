"""The registration of a scanned log: what turns pixels into depth and physical values (``docs/registration.md``).

A registration file is JSON, described by ``docs/registration.schema.json``: the image's size, the depth of two
or more columns (feet or metres, either direction; piecewise linear between them, extended linearly beyond),
an optional row offset per column (the page's skew and feed wander, added to every track's rows), optional LAS
well-header fields, and per track its top and bottom rows and the curves it carries, each with its label class,
LAS mnemonic and unit, left and right scale values, linear or logarithmic scale and off-scale rule.

Orientation (``datamodules.synth.scene``): depth runs along the columns and a track's left scale edge (position
0) is its bottom row, its right edge (position 1) its top row. Every check of ``parse`` is one line through
``RegistrationError`` (exit status 2); the synthetic generator writes the exact registration of every raster it
renders (``datamodules.synth.register``).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from datamodules.cli import UsageError

REGISTRATION_VERSION = 1
SCALES = ("linear", "log")
OFFSCALE_RULES = ("clip", "wrap", "backup")
DEPTH_UNITS = {"ft": "F", "m": "M"}  # registration unit -> LAS unit
WELL_FIELDS = ("WELL", "COMP", "FLD", "LOC", "SRVC", "DATE", "UWI", "API")
INDEX_MNEMONIC = "DEPT"
_MNEMONIC = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")
_UNIT = re.compile(r"^[^\s.:]{0,16}$")  # LAS: no space, dot or colon in a unit
_PAIR = re.compile(r"\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]")
_PICK = re.compile(r"\{\s+\"column\"[^{}]*\}")


class RegistrationError(UsageError):
    """A registration that cannot be used: one line naming the file and what is wrong, exit status 2."""


@dataclass(frozen=True)
class Pick:
    """A point on a curve (where a digitiser's user clicks it), to tell it from the other curves of its class in
    its track; ``lap`` is its wrap lap there (0 = on scale). A curve may have several: one between each two
    places where it meets another curve of its class keeps the tracer from swapping them there."""

    column: float
    row: float
    lap: int = 0


@dataclass(frozen=True)
class CurveScale:
    """One curve of a track: its label class, LAS name and unit, and how track position maps to its value.

    ``offscale`` is what the plotter did where the value left the track: ``clip`` (the pen runs along the
    border; those samples are null), ``wrap`` (it re-enters at the other edge, one lap further) or ``backup``
    (clipped, and a second trace of class ``backup_class`` carries the overflow on the scale shifted by one
    track width).
    """

    cls: int
    mnemonic: str
    unit: str
    left: float
    right: float
    scale: str
    offscale: str
    backup_class: int
    picks: tuple[Pick, ...] = ()
    description: str = ""

    def value(self, pos: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Physical value at unwrapped track position ``pos`` (0 = left edge, 1 = right edge, +1 per lap)."""
        p = np.asarray(pos, np.float64)
        if self.scale == "log":
            return np.asarray(self.left * (self.right / self.left) ** p, np.float64)
        return np.asarray(self.left + p * (self.right - self.left), np.float64)

    def position(self, value: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Unwrapped track position of a physical value (inverse of ``value``; NaN for a log track's value <= 0)."""
        v = np.asarray(value, np.float64)
        if self.scale == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                pos = np.log(np.where(v > 0, v, np.nan) / self.left) / math.log(self.right / self.left)
            return np.asarray(pos, np.float64)
        return np.asarray((v - self.left) / (self.right - self.left), np.float64)


@dataclass(frozen=True)
class TrackScale:
    """One track band: its top and bottom rows where the row offset is 0, and its curves."""

    top: float
    bottom: float
    curves: tuple[CurveScale, ...]

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(frozen=True)
class Registration:
    """A parsed, checked registration file (``parse``, ``load``); ``to_json`` writes it back.

    Shape: depth_points (P, 2) float64 rows (column, depth), columns increasing, depths strictly monotonic;
    row_offset (Q, 2) float64 rows (column, rows), Q = 0 for none.
    """

    width: int
    height: int
    depth_unit: str
    depth_points: npt.NDArray[np.float64]
    tracks: tuple[TrackScale, ...]
    row_offset: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2), np.float64))
    well: Mapping[str, str] = field(default_factory=dict)

    def depth_at(self, columns: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Depth of (fractional) image columns: piecewise linear through the points, extended linearly."""
        c, d = self.depth_points[:, 0], self.depth_points[:, 1]
        return _extended_interp(np.asarray(columns, np.float64), c, d)

    def column_at(self, depths: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(Fractional) image column of depths: the inverse of ``depth_at``."""
        c, d = self.depth_points[:, 0], self.depth_points[:, 1]
        if d[0] > d[-1]:
            c, d = c[::-1], d[::-1]
        return _extended_interp(np.asarray(depths, np.float64), d, c)

    def offset_at(self, columns: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Row offset of (fractional) columns: piecewise linear, constant beyond the ends, 0 when none is given."""
        cols = np.asarray(columns, np.float64)
        if len(self.row_offset) == 0:
            return np.zeros(cols.shape, np.float64)
        return np.asarray(np.interp(cols, self.row_offset[:, 0], self.row_offset[:, 1]), np.float64)

    def band(self, track: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(top, bottom) row of track ``track`` in every image column, offset applied. Shape: (W,) each."""
        off = self.offset_at(np.arange(self.width, dtype=np.float64))
        t = self.tracks[track]
        return t.top + off, t.bottom + off

    def check_image(self, shape: tuple[int, ...], source: str) -> None:
        """RegistrationError unless an (H, W) image has the registered size."""
        h, w = shape[0], shape[1]
        if (w, h) != (self.width, self.height):
            raise RegistrationError(
                f"{source}: the image is {w}x{h} px but the registration is for {self.width}x{self.height} px"
            )

    def curves(self) -> list[tuple[int, CurveScale]]:
        """(track index, curve) of every registered curve, in file order."""
        return [(t, c) for t, track in enumerate(self.tracks) for c in track.curves]

    def cropped(self, x0: int, x1: int) -> Registration:
        """The registration of columns ``x0`` to ``x1`` (exclusive) of the image, cut out as an image of its own:
        depth and row offset kept at the crop's ends, picks outside it dropped."""
        if not 0 <= x0 < x1 - 1 < self.width:
            raise ValueError(f"crop {x0}:{x1} is not inside 0:{self.width} (two columns at least)")
        ends = np.array([x0, x1 - 1], np.float64)

        def cut(points: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            inside = points[(points[:, 0] > x0) & (points[:, 0] < x1 - 1)]
            out = np.concatenate([[[x0, values[0]]], inside, [[x1 - 1, values[1]]]])
            return np.asarray(out - np.array([x0, 0.0]), np.float64)

        offset = cut(self.row_offset, self.offset_at(ends)) if len(self.row_offset) else self.row_offset
        tracks = tuple(
            TrackScale(
                t.top,
                t.bottom,
                tuple(
                    replace(c, picks=tuple(replace(p, column=p.column - x0) for p in c.picks if x0 <= p.column < x1))
                    for c in t.curves
                ),
            )
            for t in self.tracks
        )
        return replace(
            self,
            width=x1 - x0,
            depth_points=cut(self.depth_points, self.depth_at(ends)),
            row_offset=offset,
            tracks=tracks,
        )

    def to_json(self) -> dict[str, Any]:
        """The registration as the JSON object ``parse`` reads."""
        out: dict[str, Any] = {
            "registration_version": REGISTRATION_VERSION,
            "image": {"width": self.width, "height": self.height},
            "depth": {"unit": self.depth_unit, "points": [[_num(c), _num(d)] for c, d in self.depth_points]},
        }
        if len(self.row_offset):
            out["row_offset"] = [[_num(c), _num(r)] for c, r in self.row_offset]
        if self.well:
            out["well"] = dict(self.well)
        out["tracks"] = [
            {"top": _num(t.top), "bottom": _num(t.bottom), "curves": [_curve_json(c) for c in t.curves]}
            for t in self.tracks
        ]
        return out

    def dump(self, path: Path) -> None:
        """Write the registration as a JSON file (indented, a [column, value] pair and a pick to a line)."""
        text = json.dumps(self.to_json(), indent=1)
        text = _PAIR.sub(r"[\1, \2]", text)
        text = _PICK.sub(lambda m: " ".join(m.group(0).split()), text)
        path.write_text(text + "\n")


def _num(x: float) -> float | int:
    """A JSON number, short: integers without a fraction, others to 4 decimals."""
    r = round(float(x), 4)
    return int(r) if r == int(r) and abs(r) < 2**53 else r


def _curve_json(c: CurveScale) -> dict[str, Any]:
    out: dict[str, Any] = {
        "class": c.cls,
        "mnemonic": c.mnemonic,
        "unit": c.unit,
        "left": c.left,
        "right": c.right,
        "scale": c.scale,
        "offscale": c.offscale,
    }
    if c.offscale == "backup":
        out["backup_class"] = c.backup_class
    if c.picks:
        out["picks"] = [{"column": _num(p.column), "row": _num(p.row), "lap": p.lap} for p in c.picks]
    if c.description:
        out["description"] = c.description
    return out


def _extended_interp(
    x: npt.NDArray[np.float64], xp: npt.NDArray[np.float64], fp: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """np.interp, extended linearly beyond both ends by the end segments. xp increasing, >= 2 points."""
    y = np.interp(x, xp, fp)
    lo_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
    hi_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo_slope, y)
    return np.asarray(np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi_slope, y), np.float64)


def load(path: Path) -> Registration:
    """Read and check a registration file; RegistrationError (one line) for anything unusable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RegistrationError(f"no such registration file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistrationError(f"cannot read registration {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistrationError(f"{path} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    return parse(data, str(path))


class _Reader:
    """Typed access to the JSON object with one-line errors that name the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> RegistrationError:
        return RegistrationError(f"{self.source}: {where}: {what}" if where else f"{self.source}: {what}")

    def obj(self, value: object, where: str, allowed: Sequence[str], required: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a JSON object")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(where, f"unknown field {unknown[0]!r} (known: {', '.join(allowed)})")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(where, f"missing field {missing[0]!r}")
        return value

    def number(self, value: object, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"expected a finite number, got {json.dumps(value)}")
        return float(value)

    def integer(self, value: object, where: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected a whole number, got {json.dumps(value)}")
        if value < minimum:
            raise self.fail(where, f"must be >= {minimum}, got {value}")
        return value

    def text(self, value: object, where: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {json.dumps(value)}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(where, f"{value!r} is not {hint}")
        return value

    def choice(self, value: object, where: str, options: Sequence[str]) -> str:
        if value not in options:
            raise self.fail(where, f"unknown value {json.dumps(value)} (expected one of {', '.join(options)})")
        return str(value)

    def pairs(self, value: object, where: str, minimum: int) -> npt.NDArray[np.float64]:
        if not isinstance(value, list):
            raise self.fail(where, "expected a list of [column, value] pairs")
        if len(value) < minimum:
            raise self.fail(where, f"needs at least {minimum} [column, value] pairs, got {len(value)}")
        out = np.zeros((len(value), 2), np.float64)
        for i, pair in enumerate(value):
            if not isinstance(pair, list) or len(pair) != 2:
                raise self.fail(f"{where}[{i}]", f"expected a [column, value] pair, got {json.dumps(pair)}")
            out[i] = [self.number(pair[0], f"{where}[{i}]"), self.number(pair[1], f"{where}[{i}]")]
        if np.any(np.diff(out[:, 0]) <= 0):
            raise self.fail(where, "the columns must increase strictly")
        return out


def parse(data: object, source: str = "registration") -> Registration:
    """Check a registration's JSON object and build it; RegistrationError (one line) for the first problem."""
    r = _Reader(source)
    top = r.obj(
        data,
        "",
        ("registration_version", "image", "depth", "row_offset", "well", "tracks"),
        ("registration_version", "image", "depth", "tracks"),
    )
    version = r.integer(top["registration_version"], "registration_version", 1)
    if version != REGISTRATION_VERSION:
        raise r.fail("registration_version", f"this version reads version {REGISTRATION_VERSION}, got {version}")
    image = r.obj(top["image"], "image", ("width", "height"), ("width", "height"))
    width, height = r.integer(image["width"], "image.width", 2), r.integer(image["height"], "image.height", 2)

    depth = r.obj(top["depth"], "depth", ("unit", "points"), ("unit", "points"))
    unit = r.choice(depth["unit"], "depth.unit", tuple(DEPTH_UNITS))
    points = r.pairs(depth["points"], "depth.points", 2)
    if np.any(points[:, 0] < 0) or np.any(points[:, 0] > width - 1):
        raise r.fail("depth.points", f"a column lies outside the image (0 to {width - 1})")
    steps = np.diff(points[:, 1])
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise r.fail("depth.points", "the depths must increase (or decrease) strictly with the column")
    offset = r.pairs(top.get("row_offset", []), "row_offset", 0)

    well_raw = r.obj(top.get("well", {}), "well", WELL_FIELDS, ())
    well = {k: r.text(v, f"well.{k}") for k, v in well_raw.items()}

    tracks_raw = top["tracks"]
    if not isinstance(tracks_raw, list) or not tracks_raw:
        raise r.fail("tracks", "expected a non-empty list of tracks")
    tracks = tuple(_track(r, t, i, width, height, offset) for i, t in enumerate(tracks_raw))
    order = sorted(range(len(tracks)), key=lambda i: tracks[i].top)
    for a, b in itertools.pairwise(order):
        if tracks[b].top < tracks[a].bottom:
            raise r.fail(
                f"tracks[{b}]",
                f"rows {tracks[b].top:g}-{tracks[b].bottom:g} overlap tracks[{a}] "
                f"(rows {tracks[a].top:g}-{tracks[a].bottom:g}); neighbouring tracks may share a border row only",
            )
    names = [c.mnemonic.upper() for t in tracks for c in t.curves]
    for name in names:
        if name == INDEX_MNEMONIC or names.count(name) > 1:
            what = "is the depth index's name" if name == INDEX_MNEMONIC else "is used by two curves"
            raise r.fail("tracks", f"mnemonic {name} {what}; give every curve its own")
    return Registration(width, height, unit, points, tracks, offset, well)


def _track(r: _Reader, raw: object, i: int, width: int, height: int, offset: npt.NDArray[np.float64]) -> TrackScale:
    where = f"tracks[{i}]"
    t = r.obj(raw, where, ("top", "bottom", "curves"), ("top", "bottom", "curves"))
    top, bottom = r.number(t["top"], f"{where}.top"), r.number(t["bottom"], f"{where}.bottom")
    if not top < bottom:
        raise r.fail(where, f"top row {top:g} must be above (less than) the bottom row {bottom:g}")
    if top < -0.5 or bottom > height - 0.5:
        raise r.fail(where, f"rows {top:g}-{bottom:g} fall outside the image (rows 0 to {height - 1})")
    curves_raw = t["curves"]
    if not isinstance(curves_raw, list) or not curves_raw:
        raise r.fail(f"{where}.curves", "expected a non-empty list of curves")
    curves = tuple(_curve(r, c, f"{where}.curves[{j}]", width, height) for j, c in enumerate(curves_raw))
    for c in curves:
        for p in c.picks:
            shift = float(np.interp(p.column, offset[:, 0], offset[:, 1])) if len(offset) else 0.0
            if not top - 2 <= p.row - shift <= bottom + 2:
                raise r.fail(where, f"a pick of {c.mnemonic} (row {p.row:g}) is not inside the track")
        sharing = [o for o in curves if o.cls == c.cls] + [
            o for o in curves if o.offscale == "backup" and o.backup_class == c.cls and o is not c
        ]
        if len(sharing) > 1 and not c.picks:
            raise r.fail(
                where,
                f"{c.mnemonic} shares class {c.cls} with another curve or backup trace of the track; "
                "give it a pick (a point on it) to tell them apart",
            )
    return TrackScale(top, bottom, curves)


def _curve(r: _Reader, raw: object, where: str, width: int, height: int) -> CurveScale:
    allowed = (
        "class",
        "mnemonic",
        "unit",
        "left",
        "right",
        "scale",
        "offscale",
        "backup_class",
        "picks",
        "description",
    )
    c = r.obj(raw, where, allowed, ("class", "mnemonic", "unit", "left", "right", "scale", "offscale"))
    cls = r.integer(c["class"], f"{where}.class", 1)
    mnemonic = r.text(
        c["mnemonic"], f"{where}.mnemonic", _MNEMONIC, "a LAS mnemonic (a letter, then up to 15 A-Z 0-9 _)"
    )
    unit = r.text(c["unit"], f"{where}.unit", _UNIT, "a LAS unit (no spaces, dots or colons)")
    left, right = r.number(c["left"], f"{where}.left"), r.number(c["right"], f"{where}.right")
    scale = r.choice(c["scale"], f"{where}.scale", SCALES)
    offscale = r.choice(c["offscale"], f"{where}.offscale", OFFSCALE_RULES)
    if left == right:
        raise r.fail(where, f"{mnemonic}: the left and right scale values are both {left:g}")
    if scale == "log" and (left <= 0 or right <= 0):
        raise r.fail(where, f"{mnemonic}: a log scale needs left and right > 0, got {left:g} and {right:g}")
    if "backup_class" in c and offscale != "backup":
        raise r.fail(where, f"{mnemonic}: backup_class is given but the off-scale rule is {offscale}, not backup")
    backup_class = r.integer(c.get("backup_class", cls), f"{where}.backup_class", 1)
    picks_raw = c.get("picks", [])
    if not isinstance(picks_raw, list):
        raise r.fail(f"{where}.picks", "expected a list of {column, row, lap} points")
    picks = tuple(_pick(r, p, f"{where}.picks[{i}]", width, height) for i, p in enumerate(picks_raw))
    description = r.text(c.get("description", ""), f"{where}.description")
    return CurveScale(cls, mnemonic, unit, left, right, scale, offscale, backup_class, picks, description)


def _pick(r: _Reader, raw: object, where: str, width: int, height: int) -> Pick:
    p = r.obj(raw, where, ("column", "row", "lap"), ("column", "row"))
    col, row = r.number(p["column"], f"{where}.column"), r.number(p["row"], f"{where}.row")
    lap = p.get("lap", 0)
    if isinstance(lap, bool) or not isinstance(lap, int):
        raise r.fail(f"{where}.lap", f"expected a whole number, got {json.dumps(lap)}")
    if not (0 <= col <= width - 1 and 0 <= row <= height - 1):
        raise r.fail(where, f"({col:g}, {row:g}) lies outside the {width}x{height} image")
    return Pick(col, row, lap)
