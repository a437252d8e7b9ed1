"""Build the Blender add-on: ``python build_addon.py`` writes ``dist/vp3d_blender-<version>.zip``.

The zip holds one folder, ``vp3d_blender/``: the add-on (``blender_addon/``), its
``blender_manifest.toml`` (a Blender 4.2+ extension) and ``bl_info`` (so it also installs as a
legacy add-on named ``vp3d_blender``), and under ``vendor/`` the numpy-only modules of
``converters/`` that read Motion files, their imports made relative. Nothing is installed into
Blender's Python at run time. Same sources, same bytes: entries sorted, fixed timestamps and
permissions, the version taken from ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE = "vp3d_blender"
#: converters modules the add-on needs (numpy and the standard library only)
VENDORED = ("errors", "fileio", "joints", "motion", "motion_file", "npz", "options", "types")
_STAMP = (2020, 1, 1, 0, 0, 0)


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _vendored(name: str) -> bytes:
    text = (ROOT / "converters" / f"{name}.py").read_text()
    text = re.sub(r"\bfrom converters\.(\w+) import", r"from .\1 import", text)
    if re.search(r"\bconverters\b\.", text.replace("converters/", "")) and "import converters" in text:
        raise SystemExit(f"converters/{name}.py imports converters in a way build_addon.py cannot vendor")
    return text.encode()


def contents() -> dict[str, bytes]:
    """Archive name -> bytes."""
    v = version()
    files: dict[str, bytes] = {}
    for path in sorted((ROOT / "blender_addon").glob("*.py")):
        text = path.read_text()
        if path.name == "__init__.py":
            text = re.sub(r'"version": \([^)]*\)', f'"version": ({", ".join(v.split("."))})', text)
        files[f"{PACKAGE}/{path.name}"] = text.encode()
    manifest = (ROOT / "blender_addon" / "blender_manifest.toml").read_text()
    files[f"{PACKAGE}/blender_manifest.toml"] = re.sub(r'(?m)^version = ".*"$', f'version = "{v}"', manifest).encode()
    files[f"{PACKAGE}/vendor/__init__.py"] = b'"""numpy-only modules of converters (from build_addon.py)."""\n'
    for name in VENDORED:
        files[f"{PACKAGE}/vendor/{name}.py"] = _vendored(name)
    files[f"{PACKAGE}/LICENSE"] = (ROOT / "LICENSE").read_bytes() if (ROOT / "LICENSE").is_file() else b"MIT\n"
    return files


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}-{version()}.zip"
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w") as zf:
        for name, data in sorted(contents().items()):
            info = zipfile.ZipInfo(name, date_time=_STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=9)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "dist"), help="folder for the zip (default: dist/)")
    args = parser.parse_args(argv)
    try:
        print(build(Path(args.out)))
    except OSError as exc:
        print(f"build_addon.py: error: cannot write the zip in {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
