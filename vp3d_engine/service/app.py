"""``vp3d serve``: the job API and the web page (FastAPI).

API (also in the OpenAPI schema at ``/docs``):

- ``POST /api/jobs``: multipart upload, the video in field ``file``, options as form fields
  (``detector``, ``checkpoint``, ``lifter``, ``rig``, ``root_motion``, ``feet``, ``smooth``,
  ``start``, ``end``, ``person``, ``mediapipe_3d`` (0 to 1, the share of MediaPipe's own 3D blended
  into the lifted pose), ``formats`` e.g. ``motion,bvh,glb``); answers ``{"id": ...}`` at
  once. The upload is streamed to disk with its size checked as it comes (413 past the limit),
  then checked as a real video of at most the allowed duration before it is queued (415/422);
  a full queue answers 503 with Retry-After.
- ``GET /api/jobs/{id}``: ``id, state (queued|running|done|failed|cancelled), stage, progress,
  queue_position, timings, error, files``; ``GET /api/jobs/{id}/events``: the same as
  Server-Sent Events until the job ends; ``GET /api/jobs/{id}/files/{name}``: a result file;
  ``GET /api/jobs/{id}/video``: the uploaded video; ``DELETE /api/jobs/{id}``: cancel a queued
  or running job, or delete a finished one with its files.
- ``GET /api/health``, ``GET /api/backends`` (detectors, lifters, checkpoints, rigs, formats).

With a token, every ``/api`` request needs ``Authorization: Bearer TOKEN`` (the page asks for it
and keeps it in the browser). The page itself is ``/`` and ``/jobs/{id}`` (a job's own URL).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from vp3d_engine.service.store import TERMINAL, JobStore
from vp3d_engine.service.workers import WorkerPool

__all__ = ["ServiceSettings", "create_app"]

log = logging.getLogger(__name__)
WEB = Path(__file__).resolve().parent / "web"
REPO = Path(__file__).resolve().parents[2]
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
MEDIA_TYPES = {".bvh": "text/plain", ".glb": "model/gltf-binary", ".json": "application/json",
               ".npz": "application/octet-stream", ".fbx": "application/octet-stream", ".mp4": "video/mp4"}


@dataclass
class ServiceSettings:
    data: Path
    workers: int = 1
    token: str = ""
    max_upload_mb: float = 500.0
    max_duration_s: float = 600.0
    max_queue: int = 50
    expire_hours: float = 24.0 * 7
    runner: str = "vp3d_engine.service.runner:make_runner"
    three: Path = field(default_factory=lambda: _three_folder())


def _three_folder() -> Path:
    """three.js for the page: ``$VP3D_THREE`` (an installed copy, as in the container image), else
    the repository's npm tools folder (``scripts/setup_node_tools.sh``)."""
    env = os.environ.get("VP3D_THREE", "")
    return Path(env) if env else REPO / "tools" / "gltf" / "node_modules" / "three"


class _Problem(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


#: A too-large upload is still read (and dropped) up to this much past the limit before the 413,
#: so that a client still sending gets the answer rather than a broken pipe; a far larger one is cut off.
DRAIN_BYTES = 32 * 1024 * 1024


async def _drain(request: Request, cap: int) -> None:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            return


async def _receive_upload(request: Request, folder: Path, limit: int) -> tuple[dict[str, str], str, str]:
    """Stream a multipart body to ``folder``: the form fields, the client's file name, and the
    stored file's name (``upload`` plus a known video suffix). Past ``limit`` bytes: 413."""
    from python_multipart import FormParser
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise _Problem(415, "send the video as multipart/form-data in a field named 'file'")
    declared = request.headers.get("content-length")
    too_big = _Problem(413, f"the upload is larger than the limit of {limit / 1e6:.0f} MB")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        await _drain(request, limit + DRAIN_BYTES)
        raise too_big
    fields: dict[str, str] = {}
    files: list[Any] = []
    folder.mkdir(parents=True)

    def on_field(field: Any) -> None:
        if field.field_name and len(fields) < 32:
            fields[field.field_name.decode("utf-8", "replace")[:64]] = (field.value or b"").decode("utf-8",
                                                                                                  "replace")[:256]

    parser = FormParser("multipart/form-data", on_field, files.append, boundary=boundary,
                        config={"UPLOAD_DIR": str(folder), "MAX_MEMORY_FILE_SIZE": 0, "UPLOAD_KEEP_FILENAME": False,
                                "UPLOAD_DELETE_TMP": False})
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit + 64 * 1024:  # read on, dropping it (see DRAIN_BYTES), then refuse
            if received > limit + DRAIN_BYTES:
                break
            continue
        parser.write(chunk)
    if received > limit + 64 * 1024:
        raise too_big
    parser.finalize()
    uploads = [f for f in files if f.field_name == b"file"]
    if not uploads:
        raise _Problem(400, "no file: send the video in a form field named 'file'")
    upload = uploads[0]
    upload.close()
    name = (upload.file_name or b"video").decode("utf-8", "replace")
    if any(c in name for c in "/\\\0") or name.startswith(".") or any(ord(c) < 32 for c in name) or len(name) > 255:
        raise _Problem(400, f"the file name {name[:80]!r} is a path or not a plain name; send the file under its "
                            "own name, e.g. clip.mp4")
    suffix = Path(name.replace("\\", "/")).suffix.lower()
    stored = "upload" + (suffix if suffix in VIDEO_SUFFIXES else ".video")
    if upload.size == 0 or not upload.actual_file_name:
        raise _Problem(400, f"{name}: the file is empty; choose a video")
    source = Path(upload.actual_file_name.decode() if isinstance(upload.actual_file_name, bytes)
                  else upload.actual_file_name)
    if upload.size > limit:
        raise _Problem(413, f"the upload is larger than the limit of {limit / 1e6:.0f} MB")
    source.replace(folder / stored)
    for other in files:  # a second file field: not kept
        if other is not upload and other.actual_file_name:
            Path(other.actual_file_name.decode() if isinstance(other.actual_file_name, bytes)
                 else other.actual_file_name).unlink(missing_ok=True)
    return fields, name, stored


def _check_video(path: Path, name: str, max_duration: float) -> None:
    from converters.errors import Vp3dError
    from vp3d_engine.video import probe_video

    try:
        info = probe_video(path)
    except Vp3dError as exc:
        raise _Problem(415, f"{name}: not a video vp3d can read ({str(exc).replace(str(path), name)})") from None
    duration = info.duration_s or ((info.frames or 0) / info.fps if info.fps else 0.0)
    if duration > max_duration:
        raise _Problem(422, f"{name}: {duration:.0f} s long; this service takes videos up to {max_duration:.0f} s "
                            "(cut it, or run vp3d-convert yourself)")


def create_app(settings: ServiceSettings) -> FastAPI:
    store = JobStore(settings.data)
    pool = WorkerPool(store, settings.workers, settings.runner)

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
            await asyncio.sleep(60)

    app = FastAPI(title="vp3d serve", version=_version(), lifespan=lifespan,
                  description="Video of a person to a 3D animation: upload, follow, download.")

    @app.exception_handler(_Problem)
    async def problem(request: Request, exc: _Problem) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.middleware("http")
    async def authorize(request: Request, call_next: Any) -> Response:
        if settings.token and request.url.path.startswith("/api/") and request.url.path != "/api/health":
            given = request.headers.get("authorization", "")
            query = request.query_params.get("token", "")  # EventSource and <video> cannot send headers
            if not (secrets.compare_digest(given, f"Bearer {settings.token}")
                    or (query and secrets.compare_digest(query, settings.token))):
                drained = 0  # read what the client is sending (up to the upload limit): a client still
                async for chunk in request.stream():  # sending when we answer sees a reset, not the 401
                    drained += len(chunk)
                    if drained > settings.max_upload_mb * 1e6:
                        break
                return JSONResponse({"detail": "a valid token is required: Authorization: Bearer TOKEN"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        response: Response = await call_next(request)
        return response

    def job_or_404(job_id: str) -> Any:
        job = store.get(job_id) if job_id.replace("-", "").replace("_", "").isalnum() else None
        if job is None:
            raise _Problem(404, f"no job {job_id!r} (finished jobs expire after {settings.expire_hours:g} h)")
        return job

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "version": _version(), "workers": settings.workers, "running": pool.running(),
                "queued": store.count("queued")}

    @app.get("/api/backends")
    def backends() -> dict[str, Any]:
        from converters.rigs import PRESETS
        from vp3d_engine.checkpoints import CONFIG_NAME, checkpoint_search_path
        from vp3d_engine.detectors.registry import detector_names
        from vp3d_engine.lifters.registry import lifter_names
        from vp3d_engine.service.runner import JOB_FORMATS

        checkpoints = sorted({q.name for root in checkpoint_search_path() if root.is_dir()
                              for q in root.iterdir() if (q / CONFIG_NAME).is_file()})
        return {"detectors": [{"name": n} for n in detector_names() if n != "precomputed"],
                "lifters": [{"name": n} for n in lifter_names()],
                "checkpoints": [{"name": n} for n in checkpoints], "rigs": list(PRESETS),
                "formats": list(JOB_FORMATS), "limits": {"max_upload_mb": settings.max_upload_mb,
                                                         "max_duration_s": settings.max_duration_s}}

    @app.post("/api/jobs", status_code=201)
    async def submit(request: Request) -> dict[str, str]:
        from converters.errors import ConfigurationError
        from vp3d_engine.service.runner import options_from_form

        if store.count("queued") >= settings.max_queue:
            raise _Problem(503, "the queue is full; try again in a minute", {"Retry-After": "60"})
        job_id = store.new_id()
        folder = store.folder(job_id)
        try:
            fields, name, stored = await _receive_upload(request, folder, int(settings.max_upload_mb * 1e6))
            try:
                options = options_from_form(fields)
            except ConfigurationError as exc:
                raise _Problem(422, str(exc)) from None
            await asyncio.to_thread(_check_video, folder / stored, name, settings.max_duration_s)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # nothing of a refused upload stays
            raise
        store.add(job_id, name[:200], stored, options)
        return {"id": job_id}

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str) -> dict[str, Any]:
        job = job_or_404(job_id)
        return job.public(store.queue_position(job))

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        job_or_404(job_id)

        async def stream() -> AsyncIterator[str]:
            last = None
            while not await request.is_disconnected():
                job = store.get(job_id)
                if job is None:
                    yield "event: gone\ndata: {}\n\n"
                    return
                now = json.dumps(job.public(store.queue_position(job)))
                if now != last:
                    last = now
                    yield f"data: {now}\n\n"
                if job.state in TERMINAL:
                    return
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/api/jobs/{job_id}/files/{name}")
    def result_file(job_id: str, name: str) -> FileResponse:
        job = job_or_404(job_id)
        if name not in job.files:  # only the names the job wrote: never a path from the client
            raise _Problem(404, f"job {job_id} has no file {name!r}; it has {', '.join(job.files) or 'none yet'}")
        path = store.folder(job_id) / "out" / name
        return FileResponse(path, media_type=MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream"),
                            filename=name)

    @app.get("/api/jobs/{job_id}/video")
    def video(job_id: str) -> FileResponse:
        job = job_or_404(job_id)
        return FileResponse(store.folder(job_id) / job.upload, media_type="video/mp4")

    @app.delete("/api/jobs/{job_id}")
    def delete(job_id: str) -> dict[str, Any]:
        job = job_or_404(job_id)
        if job.state in ("queued", "running"):
            store.update(job_id, state="cancelled", finished=time.time(), error="cancelled by the user")
            pool.cancel(job_id)
            shutil.rmtree(store.folder(job_id) / "out", ignore_errors=True)
            return {"id": job_id, "state": "cancelled"}
        store.delete(job_id)
        return {"id": job_id, "state": "deleted"}

    @app.get("/", include_in_schema=False)
    @app.get("/jobs/{job_id}", include_in_schema=False)
    def page(job_id: str = "") -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{path:path}", include_in_schema=False)
    def static(path: str) -> FileResponse:
        if path.startswith("three/"):
            root, rest = settings.three, path[len("three/"):]
        else:
            root, rest = WEB, path
        target = (root / rest).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            raise HTTPException(404, "not found")
        media = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}.get(target.suffix)
        return FileResponse(target, media_type=media)

    app.state.store, app.state.pool = store, pool
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vp3d")
    except PackageNotFoundError:
        return "unknown"
