#!/usr/bin/env bash
# Fetch the real clips that `vp3d train --unlabeled` uses for the shipped lifter (no 3D needed):
# the Pose2Sim single-person demo (4 phone cameras, 100 frames each at 60 fps) and the Sports2D
# demo (a man jumping off a box, a woman walking; 230 frames at 30 fps), both BSD-3-Clause
# (perfanalytics), as packaged on PyPI. The multi-person Pose2Sim demo is left out: it is the
# recording the lifter is measured on (benchmarks/multiview_accuracy.py).
#
#   bash scripts/fetch_unlabeled.sh [DIR]      (default build/unlabeled; uses the network once)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/unlabeled}"
py="${PYTHON:-.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$py" -m pip download --no-deps --only-binary :all: -d "$tmp" pose2sim==0.10.49 sports2d==0.8.34 >/dev/null
sha256sum --check --quiet - <<EOF
403e0dc4065898ba6a595e72a8970950310979253d60e24c2e00b16b36bf21e1  $tmp/pose2sim-0.10.49-py3-none-any.whl
733b6db70742636ae9c35d870c22bd416582f579abd5881bee93a14bb0e2655d  $tmp/sports2d-0.8.34-py3-none-any.whl
EOF
mkdir -p "$tmp/x"
for cam in cam01 cam02 cam03 cam04; do
  unzip -q -p "$tmp/pose2sim-0.10.49-py3-none-any.whl" "Pose2Sim/Demo_SinglePerson/videos/$cam.mp4" \
    > "$tmp/x/pose2sim-singleperson-$cam.mp4"
done
unzip -q -p "$tmp/sports2d-0.8.34-py3-none-any.whl" "Sports2D/Demo/demo.mp4" > "$tmp/x/sports2d-demo.mp4"
unzip -q -p "$tmp/pose2sim-0.10.49-py3-none-any.whl" "pose2sim-0.10.49.dist-info/licenses/LICENSE" > "$tmp/x/LICENSE"
(cd "$tmp/x" && sha256sum --check --quiet -) <<EOF
cf4f2816c86bea4bfbea255333d8626ff32a3ecabdab8b0fb147cea9167fde3a  pose2sim-singleperson-cam01.mp4
94ff87cf978b8406e8aa36ab3c5362e72848994e87652f0dc7a33c315e8e0442  pose2sim-singleperson-cam02.mp4
b8b329f832f178f27ecb78d024d5026b96c6adb36c387bfe2c0af85eab8a11ca  pose2sim-singleperson-cam03.mp4
b5c0e7863fd70d008e7178d3c556b045b0ea5f78fcd61ca548a0b2e807e641f7  pose2sim-singleperson-cam04.mp4
d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039  sports2d-demo.mp4
EOF
mkdir -p "$(dirname "$out")"
rm -rf "$out.partial" && mv "$tmp/x" "$out.partial" && rm -rf "$out" && mv "$out.partial" "$out"
echo "unlabeled clips in $out: $(ls "$out" | grep -c mp4) videos (BSD-3-Clause, see $out/LICENSE)"
