"""vp3d for Blender: "Import pose from video". A video of a person becomes an animated armature, or
drives the selected character, through vp3d's engine run locally (``vp3d-convert``) or remotely
(``vp3d serve``). The add-on itself needs only Blender and its numpy: never torch, scipy or the
engine's own package; it reads the engine's Motion file."""

bl_info = {
    "name": "vp3d: Import pose from video",
    "author": "vp3d",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "View3D > Sidebar > vp3d; File > Import > Pose from video",
    "description": "Turn a video of a person into an animated armature, or drive the selected character",
    "category": "Import-Export",
}


def register() -> None:
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()
