ARG BASE=python:3.11-slim-bookworm
# vp3d: the service (`vp3d serve`, the default command) and the CLI (`vp3d-convert ...`) in one image.
#
# Built by scripts/build_image.sh from its context folder (build/image): `wheels/` (vp3d and every
# dependency, downloaded on the host with constraints.txt) and `three/` (three.js for the web page) and `swagger-ui/` (the API docs page).
# Nothing is downloaded inside the build: pip installs with --no-index from the wheelhouse, so the
# same wheelhouse gives the same image contents. The base needs Python 3.11 with venv, and the
# X11/GL client libraries Blender's module links against (libgl1, libx11-6 and friends); a base
# without them gets them from apt (the one step that would use the network; the local base made by
# scripts/build_image.sh has them already).
#
#   docker run -p 8000:8000 -e VP3D_TOKEN=secret -v vp3d-data:/data vp3d
#   docker run --rm -v "$PWD":/work vp3d vp3d-convert /work/clip.mp4 --out /work/out --bvh
#
# GPU users: build with TORCH=cuda (scripts/build_image.sh passes it on) after putting a CUDA torch
# wheel in the wheelhouse (TORCH_INDEX=https://download.pytorch.org/whl/cu124 scripts/build_image.sh).

FROM ${BASE} AS build
LABEL org.opencontainers.image.title=vp3d
ARG TORCH=cpu
COPY wheels /wheels
RUN python3 -m venv /opt/vp3d \
 && /opt/vp3d/bin/python -m pip install --no-index --find-links /wheels --no-cache-dir --disable-pip-version-check \
        torch "vp3d[mediapipe,serve,blender]" \
 && /opt/vp3d/bin/python -m pip install --no-index --find-links /wheels --no-cache-dir --disable-pip-version-check \
        --no-deps mediapipe \
 && echo "torch build: ${TORCH}" > /opt/vp3d/TORCH

FROM ${BASE}
LABEL org.opencontainers.image.title=vp3d \
      org.opencontainers.image.description="vp3d: video of a person to a retargetable 3D animation (CLI and service)"
ARG BLENDER_LIBS="libgl1 libopengl0 libegl1 libglx0 libx11-6 libxext6 libxfixes3 libxi6 libxrender1 libxt6 libxkbcommon0 libsm6 libice6 libgomp1"
ARG BLENDER_LIBS_CHECK="GL OpenGL EGL X11 Xext Xfixes Xi Xrender Xt xkbcommon SM ICE gomp"
RUN python3 -c "import ctypes.util as u, sys; m = [n for n in '${BLENDER_LIBS_CHECK}'.split() if not u.find_library(n)]; \
sys.exit(f'missing libraries: {m}' if m else 0)" \
 || (apt-get update && apt-get install -y --no-install-recommends ${BLENDER_LIBS} && rm -rf /var/lib/apt/lists/*)
COPY --from=build /opt/vp3d /opt/vp3d
COPY three /opt/vp3d/share/three
COPY swagger-ui /opt/vp3d/share/swagger-ui
RUN (getent group vp3d || groupadd --gid 1000 vp3d) \
 && (id vp3d 2>/dev/null || useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin vp3d) \
 && mkdir -p /data && chown vp3d:vp3d /data
ENV PATH=/opt/vp3d/bin:$PATH \
    VP3D_THREE=/opt/vp3d/share/three \
    VP3D_SWAGGER_UI=/opt/vp3d/share/swagger-ui \
    HOME=/home/vp3d \
    MPLCONFIGDIR=/tmp/matplotlib \
    GLOG_minloglevel=2
USER vp3d
WORKDIR /data
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('VP3D_PORT', '8000'), timeout=4)"]
# Bound to every address, so a token is required (VP3D_TOKEN): without one it refuses to start.
# The port is $VP3D_PORT, 8000 unless set.
CMD ["vp3d", "serve", "--host", "0.0.0.0", "--data", "/data/service"]
