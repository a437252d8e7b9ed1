"""The one definition of the conversion options (converters/options.py) and every door derived
from it: vp3d-convert's argparse, the service's form, the typed options, vp3d list --json."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from converters.errors import CheckpointError, ConfigurationError
from converters.options import OPTIONS, option, options_for, parse_text, to_cli_arguments, to_form_fields
from vp3d_engine.options import ConvertOptions, build_options, check_options, values_from_form


def test_every_option_is_complete_and_its_default_passes_its_own_checks() -> None:
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    for opt in OPTIONS:
        assert opt.help and opt.target and opt.doors, opt.name
        assert opt.kind in ("choice", "number", "integer", "text", "flag", "size", "smooth", "formats"), opt.name
        if opt.kind == "choice" and not opt.registry:
            assert opt.default in opt.values(), opt.name
        if opt.low is not None and opt.default is not None:
            assert opt.low <= opt.default <= (opt.high if opt.high is not None else math.inf), opt.name
    check_options(ConvertOptions())  # the typed options' defaults are the table's


def test_the_typed_options_take_their_defaults_from_the_table() -> None:
    options = ConvertOptions()
    assert options.rig == option("rig").default and options.pipeline.mediapipe_3d == option("mediapipe_3d").default
    assert options.render.azimuth == option("render_azimuth").default and options.smoothing == "auto"


def test_the_rig_choices_are_the_rig_presets_and_the_fps_bounds_those_of_files() -> None:
    from converters.rigs import PRESETS
    from converters.types import MAX_FPS, MIN_FPS

    assert set(option("rig").values()) == set(PRESETS)
    assert (option("fps").low, option("fps").high) == (MIN_FPS, MAX_FPS)


@pytest.mark.parametrize(("name", "text", "words"), [
    ("mediapipe_3d", "1.5", "from 0 to 1"), ("mediapipe_3d", "nan", "from 0 to 1"),
    ("mediapipe_3d", "half", "must be a number"), ("start", "inf", "seconds"), ("person", "1.5", "whole number"),
    ("person", "10", "from 0 to 9"), ("rig", "robot", "one of mixamo, ue, h36m"), ("image_size", "0x5", "WIDTHxHEIGHT"),
    ("formats", "bvh,exe", "not exe"), ("smooth", "oneeuro:beta=x", "is not a number"),
    ("checkpoint", "a\x1bb", "text"), ("checkpoint", "x" * 300, "longer than"),
])
def test_a_value_outside_the_table_is_one_clear_error(name: str, text: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words.replace("(", r"\(")):
        parse_text(option(name), text)


def test_values_go_out_and_come_back_through_every_door_unchanged() -> None:
    values = {"rig": "ue", "mediapipe_3d": 0.25, "start": 1.5, "end": 4.0, "person": 1, "smooth": "none",
              "feet": "off", "root_motion": "in-place", "trajectory": "model", "label_swaps": "keep"}
    form = to_form_fields(values)
    assert form["mediapipe_3d"] == "0.25" and form["start"] == "1.5"
    back = values_from_form(form)
    assert {k: back[k] for k in values} == values
    from vp3d_engine.convert_cli import build_parser
    from vp3d_engine.options import values_from_args

    args = build_parser().parse_args(["clip.mp4", *to_cli_arguments(values)])
    parsed = values_from_args(args)
    assert {k: parsed[k] for k in values} == values
    built = build_options(parsed)
    assert (built.rig, built.pipeline.mediapipe_3d, built.pipeline.person, built.feet) == ("ue", 0.25, 1, "off")


def test_the_doors_differ_only_where_the_table_says() -> None:
    cli, service, addon = ({o.name for o in options_for(d)} for d in ("cli", "service", "addon"))
    assert addon <= service <= cli
    assert "device" not in service and "workers" not in service  # the machine's business, not an upload's
    assert values_from_form({})["rig"] == "mixamo" and build_options({}).rig == "h36m"  # door defaults
    with pytest.raises(ConfigurationError, match="unknown field 'device'"):
        values_from_form({"device": "cuda"})


def test_the_options_that_depend_on_each_other_are_checked_before_any_work() -> None:
    with pytest.raises(ConfigurationError, match=r"end .* must come after start"):
        build_options({"start": 5.0, "end": 1.0})
    with pytest.raises(ConfigurationError, match=r"takes its 3D from the detector.s world landmarks: use detector "
                                                 "mediapipe"):
        check_options(ConvertOptions(pipeline=ConvertOptions().pipeline.__class__(lifter="blazepose-world",
                                                                                     keypoints=__file__)))
    with pytest.raises(CheckpointError, match="checkpoint: no checkpoint 'nonexistent'"):
        build_options({"checkpoint": "nonexistent"})
    build_options({"checkpoint": "nonexistent"}, local=False)  # a cluster's workers load their own
    with pytest.raises(ConfigurationError, match="with a keypoints file the frames come from the file"):
        check_options(ConvertOptions(pipeline=ConvertOptions().pipeline.__class__(start=1.0, keypoints=__file__)))
    with pytest.raises(ConfigurationError, match="lifter must be one of"):
        build_options({"lifter": "test"})  # a training architecture, not a conversion's lifter
    from vp3d_engine.pipeline import run_pipeline  # the stages called on their own check them too

    with pytest.raises(ConfigurationError, match="takes its 3D from the detector"):
        run_pipeline(__file__, ConvertOptions().pipeline.__class__(lifter="blazepose-world", keypoints=__file__))


def test_vp3d_list_json_carries_the_table_with_the_registries_names() -> None:
    done = subprocess.run([sys.executable, "-m", "vp3d_engine.cli", "list", "--json"], capture_output=True,
                          text=True, timeout=120, check=True)
    listing = json.loads(done.stdout)
    by_name = {o["name"]: o for o in listing["options"]}
    assert set(by_name) == {o.name for o in OPTIONS}
    detectors = [c["value"] for c in by_name["detector"]["choices"]]
    assert "mediapipe" in detectors and "blazepose-multi" in detectors and "precomputed" not in detectors
    assert "test" not in [c["value"] for c in by_name["lifter"]["choices"]]
    assert (by_name["mediapipe_3d"]["low"], by_name["mediapipe_3d"]["high"]) == (0, 1)
    assert [d["name"] for d in listing["detectors"]] == detectors
