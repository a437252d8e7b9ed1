#!/usr/bin/env bash
# Build the vp3d container image and tag it vp3d:latest (podman names it localhost/vp3d:latest).
#
#   bash scripts/build_image.sh             # Docker when a Docker daemon answers, else podman
#   ENGINE=podman bash scripts/build_image.sh
#
# What it does, idempotently (run it again: only what changed is redone):
# 1. The context folder build/image: `wheels/`, a wheelhouse of vp3d and every dependency made on
#    this machine with the project's constraints (pip wheel / pip download; needs .venv from
#    scripts/setup.sh and the package registries), `three/`, three.js for the web page, and
#    `swagger-ui/`, Swagger UI for the API docs page (both from scripts/setup_node_tools.sh). The build inside the container installs from it with
#    --no-index and runs with no network: same wheelhouse, same image contents.
# 2. With Docker: `docker build` with the Dockerfile's public base (BASE=... to change it).
# 3. Without Docker (no registry needed): podman, set up here as root to work on machines like
#    this one (runc as the runtime, since crun fails with "cgroups in hybrid mode not supported";
#    nofile capped at the hard limit and nproc at 4096, since the defaults fail with "setrlimit ...
#    operation not permitted"), and a local base image, localhost/vp3d-base:bookworm, made with
#    debootstrap (Debian bookworm minbase, Python 3.11 and the libraries Blender's module needs)
#    unless BASE names another. Afterwards a plain `podman run localhost/vp3d:latest ...` works.
#
# Options (environment): IMAGE (default vp3d:latest), BASE, ENGINE (docker|podman),
# TORCH_INDEX (a PyTorch wheel index for another torch build, e.g.
# https://download.pytorch.org/whl/cu124, with TORCH_SPEC, default: constraints.txt's CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-vp3d:latest}
CTX=build/image
LOCAL_BASE=localhost/vp3d-base:bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates,libgl1,libopengl0,libegl1,libglx0,libx11-6,libxext6,libxfixes3,libxi6,libxrender1,libxt6,libxkbcommon0,libsm6,libice6,libgomp1
PY=.venv/bin/python
[ -x "$PY" ] || { echo "build_image.sh: run scripts/setup.sh first (it makes .venv, used to fetch the wheels)" >&2; exit 1; }
say() { echo "build_image.sh: $*" >&2; }

# 1. The context: wheelhouse and three.js.
mkdir -p "$CTX/wheels"
cp Dockerfile "$CTX/Dockerfile"
rm -f "$CTX"/wheels/vp3d-*.whl
say "wheelhouse in $CTX/wheels"
# The vp3d wheel's file times from the last commit: the same code gives the same wheel, so an
# unchanged tree rebuilds from the engine's layer cache.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 315532800)}
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$CTX/wheels" . 2>/dev/null \
  || "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$CTX/wheels" .
TORCH_ARGS=(torch)
if [ -n "${TORCH_INDEX:-}" ]; then
  "$PY" -m pip download --quiet --disable-pip-version-check -d "$CTX/wheels" --index-url "$TORCH_INDEX" \
    "${TORCH_SPEC:-torch}"
  TORCH_ARGS=()
fi
quiet_pip() {  # pip's notes about unreachable extra index folders are noise here
  "$PY" -m pip "$@" 2> >(grep -v "^WARNING: Location 'file://" >&2)
}
quiet_pip download --quiet --disable-pip-version-check -c constraints.txt -d "$CTX/wheels" \
  --find-links "$CTX/wheels" "${TORCH_ARGS[@]}" "vp3d[mediapipe,serve,blender]"
quiet_pip download --quiet --disable-pip-version-check -c constraints.txt -d "$CTX/wheels" --no-deps \
  mediapipe==0.10.21
THREE=tools/gltf/node_modules/three
[ -d "$THREE/build" ] || bash scripts/setup_node_tools.sh
mkdir -p "$CTX/three"
cp "$THREE/package.json" "$CTX/three/"
for part in build examples/jsm; do
  mkdir -p "$CTX/three/$part"
  cp -r "$THREE/$part/." "$CTX/three/$part/"
done
SWAGGER=tools/gltf/node_modules/swagger-ui-dist  # the API docs page (/docs), served by the service itself
[ -f "$SWAGGER/swagger-ui-bundle.js" ] || bash scripts/setup_node_tools.sh
mkdir -p "$CTX/swagger-ui"
cp "$SWAGGER/swagger-ui-bundle.js" "$SWAGGER/swagger-ui.css" "$SWAGGER/LICENSE" "$CTX/swagger-ui/"

ENGINE=${ENGINE:-}
if [ -z "$ENGINE" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi

if [ "$ENGINE" = docker ]; then
  # 2. Docker, public base.
  T0=$(date +%s)
  docker build ${BASE:+--build-arg BASE="$BASE"} --build-arg TORCH="${TORCH_INDEX:-cpu}" -t "$IMAGE" "$CTX"
  say "built $IMAGE with docker in $(( $(date +%s) - T0 )) s"
  exit 0
fi

# 3. podman without a registry.
command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing podman, runc and debootstrap (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }
  else
    say "podman, runc and debootstrap are needed (as root: apt-get install podman runc debootstrap)"; exit 1
  fi
}
CONF=/etc/containers/containers.conf
if [ "$(id -u)" = 0 ] && ! grep -q "vp3d: build_image.sh" "$CONF" 2>/dev/null; then
  mkdir -p /etc/containers
  [ -f "$CONF" ] && cp "$CONF" "$CONF.before-vp3d"
  HARD=$(ulimit -Hn)
  cat > "$CONF" <<EOF
# vp3d: build_image.sh (the earlier file, if any, is $CONF.before-vp3d)
[containers]
default_ulimits = ["nofile=$HARD:$HARD", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  say "configured podman in $CONF (runc, nofile $HARD, nproc 4096)"
fi
if [ -z "${BASE:-}" ]; then
  BASE=$LOCAL_BASE
  if ! podman image exists "$LOCAL_BASE"; then
    say "making $LOCAL_BASE with debootstrap (Debian bookworm minbase + Python 3.11)"
    ROOTFS=$(mktemp -d /var/tmp/vp3d-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$ROOTFS"
    trap - EXIT
  fi
fi
T0=$(date +%s)
podman build --quiet --format docker --network none --build-arg BASE="$BASE" --build-arg TORCH="${TORCH_INDEX:-cpu}" \
  -t "$IMAGE" "$CTX" >/dev/null
# Earlier builds' images, untagged by this one (labelled as vp3d's): their space back.
podman image prune -f --filter label=org.opencontainers.image.title=vp3d >/dev/null || true
say "built localhost/$IMAGE with podman from $BASE in $(( $(date +%s) - T0 )) s; $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}')"
