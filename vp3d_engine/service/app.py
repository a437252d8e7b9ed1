"""``vp3d serve``: the job API and the web page (FastAPI).

API (also in the OpenAPI schema at ``/docs``):

- ``POST /api/jobs``: multipart upload, the video in field ``file``, options as form fields
  (``detector``, ``checkpoint``, ``lifter``, ``rig``, ``root_motion``, ``feet``, ``smooth``,
  ``start``, ``end``, ``person``, ``mediapipe_3d`` (0 to 1, the share of MediaPipe's own 3D blended
  into the lifted pose), ``formats`` e.g. ``motion,bvh,glb``); answers ``{"id": ...}`` at
  once. The upload is streamed to disk and bounded as it comes (its size, parts, fields: 4xx at
  once; ``vp3d_engine/service/upload.py``), then checked as a real video whose stretch to convert
  is within the limits of seconds, frames and pixels x frames before it is queued (415/422); the
  options are checked then too (422); a full queue answers 503 with Retry-After.
- ``GET /api/jobs/{id}``: ``id, state (queued|running|done|failed|cancelled), stage, progress,
  queue_position, timings, error, files``; ``GET /api/jobs/{id}/events``: the same as
  Server-Sent Events until the job ends; ``GET /api/jobs/{id}/files/{name}``: a result file;
  ``GET /api/jobs/{id}/video``: the uploaded video; ``DELETE /api/jobs/{id}``: cancel a queued
  or running job, or delete a finished one with its files.
- ``GET /api/health``, ``GET /api/backends`` (detectors, lifters, checkpoints, rigs, formats, the
  limits of one job, and every option the form takes, from their one definition in
  ``converters/options.py``).

With a token, every ``/api`` request needs ``Authorization: Bearer TOKEN`` (the page asks for it
and keeps it in the browser). The page itself is ``/`` and ``/jobs/{id}`` (a job's own URL); the
API docs are ``/docs``, served from this machine.

Requests from other web pages are refused: a write (POST, DELETE) whose ``Origin`` is not the
service's own answers 403, and so does any request whose ``Host`` is not the address the service
was started on (loopback names when bound to loopback; ``--allowed-host`` adds names, e.g. behind
a proxy), so a page the user visits cannot use a local service, directly or by DNS rebinding.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from vp3d_engine.service.routes import Service, jobs, pages, service_version, system
from vp3d_engine.service.store import JobStore
from vp3d_engine.service.upload import Limits, Problem, drain
from vp3d_engine.service.workers import WorkerPool

__all__ = ["ServiceSettings", "create_app"]

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
#: Frames per second of the default frame limit: the duration limit at this rate.
FRAME_LIMIT_FPS = 60
#: Pixels x frames of the default limit: the frame limit at 1920x1080.
PIXELS_PER_FRAME_LIMIT = 1920 * 1080


@dataclass
class ServiceSettings:
    data: Path
    workers: int = 1
    token: str = ""
    max_upload_mb: float = 500.0
    max_duration_s: float = 600.0
    max_frames: int | None = None  # None: the duration limit at 60 frames per second
    max_queue: int = 50
    expire_hours: float = 24.0 * 7
    runner: str = "vp3d_engine.service.runner:make_runner"
    three: Path = field(default_factory=lambda: _node_folder("VP3D_THREE", "three"))
    swagger: Path = field(default_factory=lambda: _node_folder("VP3D_SWAGGER_UI", "swagger-ui-dist"))
    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: tuple[str, ...] = ()

    def limits(self) -> Limits:
        frames = self.max_frames or int(self.max_duration_s * FRAME_LIMIT_FPS)
        return Limits(max_upload_bytes=int(self.max_upload_mb * 1e6), max_duration_s=self.max_duration_s,
                      max_frames=frames, max_pixel_frames=float(frames) * PIXELS_PER_FRAME_LIMIT)

    def hosts(self) -> set[str] | None:
        """The Host headers the service answers (None: any, when bound to every address of a
        machine without --allowed-host; a token guards it then)."""
        names = {h.lower() for h in self.allowed_hosts}
        if _is_loopback(self.host):
            names |= set(LOOPBACK_NAMES)
        elif self.host not in ("0.0.0.0", "::", ""):
            names.add(f"[{self.host}]" if ":" in self.host else self.host.lower())
        elif not names:
            return None
        return names


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _node_folder(env: str, package: str) -> Path:
    """A package for the page from npm: ``$ENV`` (an installed copy, as in the container image),
    else the repository's npm tools folder (``scripts/setup_node_tools.sh``)."""
    given = os.environ.get(env, "")
    return Path(given) if given else REPO / "tools" / "gltf" / "node_modules" / package


def _host_name(host_header: str) -> str:
    """``Host: name:port`` to the name (IPv6 kept in brackets), lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _guard(settings: ServiceSettings) -> Any:
    """The middleware that refuses, before any route runs: an unknown Host (421), a write from
    another web page (403), a missing or wrong token (401)."""
    hosts = settings.hosts()

    async def guard(request: Request, call_next: Any) -> Response:
        host = _host_name(request.headers.get("host", ""))
        if hosts is not None and host not in hosts:
            return await _refuse(request, 421, f"this service answers as {', '.join(sorted(hosts))}, not "
                                               f"{host[:80]!r}; start it with --allowed-host {host[:80]} to allow it")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            fetch_site = request.headers.get("sec-fetch-site", "")
            same = origin is None or (urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
                                      and urlsplit(origin).scheme in ("http", "https"))
            if not same or fetch_site == "cross-site":
                return await _refuse(request, 403, f"requests from another web page ({str(origin)[:80]}) are refused; "
                                                   "use the service's own page, the Blender add-on or a program")
        if settings.token and request.url.path.startswith("/api/") and request.url.path != "/api/health":
            given = request.headers.get("authorization", "")
            query = request.query_params.get("token", "")  # EventSource and <video> cannot send headers
            if not (secrets.compare_digest(given.encode(), f"Bearer {settings.token}".encode())
                    or (query and secrets.compare_digest(query.encode(), settings.token.encode()))):
                return await _refuse(request, 401, "a valid token is required: Authorization: Bearer TOKEN",
                                     {"WWW-Authenticate": "Bearer"})
        response: Response = await call_next(request)
        return response

    async def _refuse(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
        await drain(request)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    return guard


def create_app(settings: ServiceSettings) -> FastAPI:
    store = JobStore(settings.data)
    pool = WorkerPool(store, settings.workers, settings.runner)
    service = Service(store=store, pool=pool, limits=settings.limits(), token=settings.token,
                      workers=settings.workers, max_queue=settings.max_queue, expire_hours=settings.expire_hours,
                      three=settings.three, swagger=settings.swagger)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        requeued = store.recover()
        if requeued:
            log.warning("queued again after a restart: %s", ", ".join(requeued))
        pool.start()
        sweeper = asyncio.create_task(_expire())
        try:
            yield
        finally:
            sweeper.cancel()
            pool.stop()
            store.close()

    async def _expire() -> None:
        while True:
            for job_id in store.expired(time.time() - settings.expire_hours * 3600):
                store.delete(job_id)
            # uploads cut off by a kill, untouched for an hour (file system work: off the event loop)
            await asyncio.to_thread(store.clean_orphans, older_than=time.time() - 3600)
            await asyncio.sleep(60)

    app = FastAPI(title="vp3d serve", version=service_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Video of a person to a 3D animation: upload, follow, download.")
    app.state.service = service
    app.state.store, app.state.pool = store, pool

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        said = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors()[:3])
        return JSONResponse({"detail": f"the request is not understood ({said[:300]})"}, status_code=422)

    app.middleware("http")(_guard(settings))
    for router in (system, jobs, pages):
        app.include_router(router)
    return app
