"""Rig presets: how each joint of a target skeleton is placed and oriented from H36M-17 joints.

A preset is a list of :class:`JointSpec` in hierarchy order (root first). Each joint:

- sits at ``at``, a fixed weighted sum of H36M joints (so in-between joints such as extra spine
  bones or the head joint are "virtual" joints on the measured ones), or, with ``at=None``, at a
  fixed offset from its parent scaled to the body (toes, which no video lifter sees);
- is oriented by ``orient``: ``"aim"`` turns the rest direction ``rest_dir`` onto the bone towards
  ``towards`` (a child joint, or an end point given as weights), with its twist taken from the
  ``twist`` rule matched to ``rest_twist``; ``"parent"`` keeps its parent's orientation (hands,
  toes: nothing seen decides them); ``"flat"`` turns the foot about the knee's hinge axis until it
  lies level (standing, walking, squatting), pointing with the shin when it lies down or kicks up.

Twist rules (the second direction that fixes the roll about the bone):

- ``"hips"``, ``"shoulders"``: right-to-left across the hips / shoulders;
- ``"mix:A:B:w"``: a blend of two rules (extra spine bones turn gradually from hips to chest);
- ``"head"``: the head's left axis, from the plane of thorax, neck/nose and head top;
- ``"hinge"``: the plane a two-bone limb bends in (knees, elbows), see :mod:`converters.solve`;
- ``"parent"``: the parent's twist direction (the lower bone of a limb shares the hinge);
- ``"up"``: the parent's up axis (clavicles).

Presets: ``h36m`` (vp3d's native 17 joints), ``mixamo`` (``mixamorig:`` names and hierarchy) and
``ue`` (the Unreal mannequin's names; ``pelvis`` is the root). Mixamo and UE share one layout:
three spine bones spaced on the curve through pelvis, spine and thorax, a neck, a head, clavicles,
two-bone limbs, hands, feet and toes.
"""

from __future__ import annotations

from dataclasses import dataclass

from converters.errors import ConfigurationError

__all__ = ["PRESETS", "JointSpec", "preset"]

Weights = tuple[tuple[str, float], ...]
Vec = tuple[float, float, float]

_X: Vec = (1.0, 0.0, 0.0)
_Y: Vec = (0.0, 1.0, 0.0)
_NX: Vec = (-1.0, 0.0, 0.0)
_NY: Vec = (0.0, -1.0, 0.0)


@dataclass(frozen=True)
class JointSpec:
    name: str
    parent: str | None
    at: Weights | None
    orient: str = "parent"
    towards: str | Weights | None = None
    rest_dir: Vec = _Y
    twist: str = "parent"
    rest_twist: Vec = _X
    mirror: str | None = None
    # For ``at=None``: the rest offset from the parent, in lengths of the parent's own bone.
    offset: Vec | None = None
    # For leaves: an End Site tip, in lengths of the joint's own incoming bone, along ``rest_dir``.
    tip: float | None = None


def _w(**weights: float) -> Weights:
    return tuple(weights.items())


def _torso(t: float) -> Weights:
    """The point at parameter ``t`` on the quadratic through pelvis (0), spine (0.5), thorax (1)."""
    return _w(pelvis=2 * (t - 0.5) * (t - 1), spine=-4 * t * (t - 1), thorax=2 * t * (t - 0.5))


def _h36m() -> list[JointSpec]:
    specs = [JointSpec("pelvis", None, _w(pelvis=1), "aim", "spine", _Y, "hips")]
    for side, other in (("right", "left"), ("left", "right")):
        specs += [
            JointSpec(f"{side}_hip", "pelvis", _w(**{f"{side}_hip": 1}), "aim", f"{side}_knee", _NY, "hinge",
                      mirror=f"{other}_hip"),
            JointSpec(f"{side}_knee", f"{side}_hip", _w(**{f"{side}_knee": 1}), "aim", f"{side}_ankle", _NY,
                      mirror=f"{other}_knee"),
            JointSpec(f"{side}_ankle", f"{side}_knee", _w(**{f"{side}_ankle": 1}), mirror=f"{other}_ankle"),
        ]
    specs += [
        JointSpec("spine", "pelvis", _w(spine=1), "aim", "thorax", _Y, "shoulders"),
        JointSpec("thorax", "spine", _w(thorax=1), "aim", "neck_nose", _Y, "shoulders"),
        JointSpec("neck_nose", "thorax", _w(neck_nose=1), "aim", "head_top", _Y, "head"),
        JointSpec("head_top", "neck_nose", _w(head_top=1)),
    ]
    for side, other, out, hinge in (("left", "right", _X, _NY), ("right", "left", _NX, _Y)):
        specs += [
            JointSpec(f"{side}_shoulder", "thorax", _w(**{f"{side}_shoulder": 1}), "aim", f"{side}_elbow", out,
                      "hinge", hinge, mirror=f"{other}_shoulder"),
            JointSpec(f"{side}_elbow", f"{side}_shoulder", _w(**{f"{side}_elbow": 1}), "aim", f"{side}_wrist", out,
                      "parent", hinge, mirror=f"{other}_elbow"),
            JointSpec(f"{side}_wrist", f"{side}_elbow", _w(**{f"{side}_wrist": 1}), rest_dir=out,
                      mirror=f"{other}_wrist"),
        ]
    order = ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
             "thorax", "neck_nose", "head_top", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
             "right_elbow", "right_wrist")
    by_name = {s.name: s for s in specs}
    return [by_name[n] for n in order]


# Roles of the shared Mixamo/UE layout, named per preset.
_ROLES = ("hips", "spine1", "spine2", "spine3", "neck", "head",
          "clavicle_L", "arm_L", "forearm_L", "hand_L", "clavicle_R", "arm_R", "forearm_R", "hand_R",
          "upleg_L", "leg_L", "foot_L", "toe_L", "upleg_R", "leg_R", "foot_R", "toe_R")

_NAMES = {
    "mixamo": {
        "hips": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck", "head": "Head",
        "clavicle": "{S}Shoulder", "arm": "{S}Arm", "forearm": "{S}ForeArm", "hand": "{S}Hand",
        "upleg": "{S}UpLeg", "leg": "{S}Leg", "foot": "{S}Foot", "toe": "{S}ToeBase",
    },
    "ue": {
        "hips": "pelvis", "spine1": "spine_01", "spine2": "spine_02", "spine3": "spine_03", "neck": "neck_01",
        "head": "head", "clavicle": "clavicle_{s}", "arm": "upperarm_{s}", "forearm": "lowerarm_{s}",
        "hand": "hand_{s}", "upleg": "thigh_{s}", "leg": "calf_{s}", "foot": "foot_{s}", "toe": "ball_{s}",
    },
}
_PREFIX = {"mixamo": "mixamorig:", "ue": ""}

# Fixed proportions where the video has nothing to measure, in shin lengths: the ball of the foot
# sits forward and below the ankle (a 0.42 m shin gives 13 cm forward, 5.5 cm down).
_TOE_OFFSET: Vec = (0.0, -0.13, 0.31)
_CLAVICLE_START = 0.15  # the clavicle starts this far from the thorax towards the shoulder
_HEAD_JOINT = 0.75  # the head joint (skull base) this far from the thorax towards the neck/nose point


def _layout(preset_name: str) -> list[JointSpec]:
    names = _NAMES[preset_name]

    def n(role: str) -> str:
        base, _, side = role.partition("_")
        template = names[base]
        word = {"L": "Left", "R": "Right", "": ""}[side]
        return _PREFIX[preset_name] + template.replace("{S}", word).replace("{s}", side.lower())

    def mirror(role: str) -> str:
        return n(role[:-1] + ("R" if role.endswith("L") else "L"))

    specs = [
        JointSpec(n("hips"), None, _w(pelvis=1), "aim", n("spine1"), _Y, "hips"),
        JointSpec(n("spine1"), n("hips"), _torso(0.25), "aim", n("spine2"), _Y, "mix:hips:shoulders:0.33"),
        JointSpec(n("spine2"), n("spine1"), _torso(0.5), "aim", n("spine3"), _Y, "mix:hips:shoulders:0.67"),
        JointSpec(n("spine3"), n("spine2"), _torso(0.75), "aim", n("neck"), _Y, "shoulders"),
        JointSpec(n("neck"), n("spine3"), _w(thorax=1), "aim", n("head"), _Y, "mix:shoulders:head:0.5"),
        JointSpec(n("head"), n("neck"), _w(thorax=1 - _HEAD_JOINT, neck_nose=_HEAD_JOINT), "aim", _w(head_top=1),
                  _Y, "head", tip=1.0),
    ]
    for s, side, out, hinge in (("L", "left", _X, _NY), ("R", "right", _NX, _Y)):
        specs += [
            JointSpec(n(f"clavicle_{s}"), n("spine3"),
                      _w(thorax=1 - _CLAVICLE_START, **{f"{side}_shoulder": _CLAVICLE_START}), "aim",
                      n(f"arm_{s}"), out, "up", _Y, mirror=mirror(f"clavicle_{s}")),
            JointSpec(n(f"arm_{s}"), n(f"clavicle_{s}"), _w(**{f"{side}_shoulder": 1}), "aim", n(f"forearm_{s}"),
                      out, "hinge", hinge, mirror=mirror(f"arm_{s}")),
            JointSpec(n(f"forearm_{s}"), n(f"arm_{s}"), _w(**{f"{side}_elbow": 1}), "aim", n(f"hand_{s}"), out,
                      "parent", hinge, mirror=mirror(f"forearm_{s}")),
            JointSpec(n(f"hand_{s}"), n(f"forearm_{s}"), _w(**{f"{side}_wrist": 1}), rest_dir=out,
                      mirror=mirror(f"hand_{s}"), tip=0.4),
        ]
    for s, side in (("L", "left"), ("R", "right")):
        specs += [
            JointSpec(n(f"upleg_{s}"), n("hips"), _w(**{f"{side}_hip": 1}), "aim", n(f"leg_{s}"), _NY, "hinge",
                      mirror=mirror(f"upleg_{s}")),
            JointSpec(n(f"leg_{s}"), n(f"upleg_{s}"), _w(**{f"{side}_knee": 1}), "aim", n(f"foot_{s}"), _NY,
                      mirror=mirror(f"leg_{s}")),
            JointSpec(n(f"foot_{s}"), n(f"leg_{s}"), _w(**{f"{side}_ankle": 1}), "flat", mirror=mirror(f"foot_{s}")),
            JointSpec(n(f"toe_{s}"), n(f"foot_{s}"), None, rest_dir=(0.0, 0.0, 1.0), offset=_TOE_OFFSET,
                      mirror=mirror(f"toe_{s}"), tip=0.45),
        ]
    by_name = {s.name: s for s in specs}
    return [by_name[n(r)] for r in _ROLES]


PRESETS: dict[str, tuple[JointSpec, ...]] = {
    "h36m": tuple(_h36m()),
    "mixamo": tuple(_layout("mixamo")),
    "ue": tuple(_layout("ue")),
}


def ankle_joints(name: str) -> tuple[str, str]:
    """The rig joints of preset ``name`` placed on the left and right ankle."""
    by_place = {spec.at: spec.name for spec in preset(name)}
    return by_place[_w(left_ankle=1)], by_place[_w(right_ankle=1)]


def preset(name: str) -> tuple[JointSpec, ...]:
    """The joint specs of rig preset ``name`` (``h36m``, ``mixamo`` or ``ue``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigurationError(f"unknown rig preset {name!r}; choose one of {', '.join(PRESETS)}") from None
