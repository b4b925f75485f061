"""The registration file: what it reads, the one-line refusals, the JSON Schema in docs/ agreeing with the reader,
the depth and row maps, cropping."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from datamodules.cli import UsageError
from datamodules.registration import RegistrationError, load, parse

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "docs" / "registration.schema.json"
SAMPLE = REPO / "docs" / "samples" / "multiclass_7_header_stacks.json"


def _good() -> dict:
    return {
        "registration_version": 1,
        "image": {"width": 200, "height": 60},
        "depth": {"unit": "ft", "points": [[0, 5000.0], [199, 5100.0]]},
        "row_offset": [[0, 0.0], [199, 1.5]],
        "well": {"WELL": "A-1", "UWI": "42-000"},
        "tracks": [
            {
                "top": 5,
                "bottom": 30,
                "curves": [
                    {"class": 1, "mnemonic": "GR", "unit": "GAPI", "left": 0, "right": 150, "scale": "linear",
                     "offscale": "wrap"},
                ],
            },
            {
                "top": 30,
                "bottom": 55,
                "curves": [
                    {"class": 1, "mnemonic": "ILD", "unit": "OHMM", "left": 0.2, "right": 2000, "scale": "log",
                     "offscale": "backup", "backup_class": 2},
                    {"class": 2, "mnemonic": "ILM", "unit": "OHMM", "left": 0.2, "right": 2000, "scale": "log",
                     "offscale": "clip", "picks": [{"column": 20, "row": 40.5}]},
                ],
            },
        ],
    }  # fmt: skip


def _bad(edit) -> dict:
    data = copy.deepcopy(_good())
    edit(data)
    return data


BAD = {
    "one depth point": (lambda d: d["depth"].update(points=[[0, 5000.0]]), "at least 2"),
    "depths not monotonic": (lambda d: d["depth"].update(points=[[0, 1.0], [50, 2.0], [100, 1.5]]), "strictly"),
    "overlapping tracks": (lambda d: d["tracks"][1].update(top=25), "overlap"),
    "a track outside the image": (lambda d: d["tracks"][1].update(bottom=70), "outside the image"),
    "a track upside down": (lambda d: d["tracks"][0].update(top=31), "above"),
    "a scale of 0 on a log track": (lambda d: d["tracks"][1]["curves"][0].update(left=0), "log scale needs"),
    "an unknown off-scale rule": (lambda d: d["tracks"][0]["curves"][0].update(offscale="bounce"), "offscale"),
    "an unknown scale": (lambda d: d["tracks"][0]["curves"][0].update(scale="sqrt"), "scale"),
    "left equal to right": (lambda d: d["tracks"][0]["curves"][0].update(right=0), "both 0"),
    "a mnemonic twice": (lambda d: d["tracks"][1]["curves"][1].update(mnemonic="GR"), "two curves"),
    "the index's mnemonic": (lambda d: d["tracks"][0]["curves"][0].update(mnemonic="DEPT"), "index"),
    "a shared class without picks": (lambda d: d["tracks"][1]["curves"][1].pop("picks"), "pick"),
    "a pick outside its track": (lambda d: d["tracks"][1]["curves"][1].update(picks=[{"column": 20, "row": 8}]),
                                 "not inside the track"),
    "an unknown field": (lambda d: d.update(dpi=300), "unknown field 'dpi'"),
    "an unknown well field": (lambda d: d["well"].update(OPERATOR="x"), "unknown field 'OPERATOR'"),
    "a depth unit of yards": (lambda d: d["depth"].update(unit="yd"), "unit"),
    "another version": (lambda d: d.update(registration_version=2), "version"),
    "a string for a number": (lambda d: d["tracks"][0].update(top="5"), "finite number"),
}  # fmt: skip


def test_a_good_registration_reads_and_writes_back():
    reg = parse(_good(), "good.json")
    assert (reg.width, reg.height, reg.depth_unit) == (200, 60, "ft")
    assert [c.mnemonic for _, c in reg.curves()] == ["GR", "ILD", "ILM"]
    assert reg.tracks[1].curves[0].backup_class == 2 and reg.tracks[1].curves[1].picks[0].lap == 0
    again = parse(json.loads(json.dumps(reg.to_json())), "again")
    assert again.to_json() == reg.to_json()


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_registration_is_one_line_naming_the_file(case):
    edit, words = BAD[case]
    with pytest.raises(RegistrationError) as info:
        parse(_bad(edit), "scan.json")
    message = str(info.value)
    assert isinstance(info.value, UsageError)  # exit status 2 in every tool
    assert message.startswith("scan.json: ") and "\n" not in message
    assert words in message, message


def test_load_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(RegistrationError, match="no such registration file"):
        load(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"registration_version": 1,')
    with pytest.raises(RegistrationError, match="is not JSON"):
        load(broken)


def test_the_image_must_have_the_registered_size():
    reg = parse(_good(), "good.json")
    reg.check_image((60, 200), "scan.png")
    with pytest.raises(RegistrationError, match=r"scan.png: the image is 201x60 px but the registration is for 200x60"):
        reg.check_image((60, 201), "scan.png")


def test_depth_and_row_maps():
    data = _good()
    data["depth"]["points"] = [[0, 5100.0], [100, 5050.0], [199, 4900.0]]  # decreasing, two slopes
    reg = parse(data, "x")
    cols = np.array([-10.0, 0.0, 50.0, 100.0, 150.0, 199.0, 210.0])
    depths = reg.depth_at(cols)
    np.testing.assert_allclose(
        depths, [5105.0, 5100.0, 5075.0, 5050.0, 5050.0 - 50 * 150 / 99, 4900.0, 4900.0 - 11 * 150 / 99]
    )
    np.testing.assert_allclose(reg.column_at(depths), cols)
    np.testing.assert_allclose(reg.offset_at(np.array([0.0, 99.5, 199.0, 300.0])), [0.0, 0.75, 1.5, 1.5])
    top, bottom = reg.band(0)
    assert top.shape == (200,) and top[-1] == pytest.approx(6.5) and bottom[0] == 30.0


def test_value_and_position_are_inverse_on_both_scales():
    reg = parse(_good(), "x")
    gr, ild = reg.tracks[0].curves[0], reg.tracks[1].curves[0]
    pos = np.array([-0.5, 0.0, 0.25, 1.0, 1.7])
    np.testing.assert_allclose(gr.value(pos), 150.0 * pos)
    np.testing.assert_allclose(ild.value(pos), 0.2 * 10.0 ** (4 * pos))
    for c in (gr, ild):
        np.testing.assert_allclose(c.position(c.value(pos)), pos)
    assert np.isnan(ild.position(np.array([-1.0])))[0]


def test_a_crop_is_a_registration_of_its_own():
    reg = parse(_good(), "x")
    crop = reg.cropped(10, 150)
    assert crop.width == 140
    np.testing.assert_allclose(crop.depth_at(np.array([0.0, 139.0])), reg.depth_at(np.array([10.0, 149.0])))
    np.testing.assert_allclose(crop.offset_at(np.array([0.0, 139.0])), reg.offset_at(np.array([10.0, 149.0])))
    assert crop.tracks[1].curves[1].picks[0].column == 10.0  # moved with the crop
    assert parse(crop.to_json(), "crop").width == 140
    assert reg.cropped(50, 150).tracks[1].curves[1].picks == ()  # the pick at column 20 is not in this one
    with pytest.raises(ValueError, match="crop"):
        reg.cropped(150, 250)


def test_the_schema_agrees_with_the_reader():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(_good()))
    assert not list(validator.iter_errors(json.loads(SAMPLE.read_text())))
    structural = (
        *("one depth point", "an unknown off-scale rule", "an unknown scale", "an unknown field"),
        *("an unknown well field", "a depth unit of yards", "another version", "a string for a number"),
    )
    for case in structural:  # what a schema can say, it says too
        assert list(validator.iter_errors(_bad(BAD[case][0]))), case


def test_the_sample_registration_reads():
    reg = load(SAMPLE)
    assert (reg.width, reg.height) == (1400, 487)
    assert [c.mnemonic for _, c in reg.curves()] == ["GR", "ILD", "ILM", "RHOB", "NPHI"]
