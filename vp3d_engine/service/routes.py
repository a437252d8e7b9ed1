"""The routes of ``vp3d serve``, one router per resource: ``/api`` (health, backends), ``/api/jobs``
(upload, follow, download, cancel), and the page with its static files and the API docs (served
from this machine: the service works offline)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from vp3d_engine.service.schemas import (
    Backends,
    Checkpoint,
    Health,
    JobCreated,
    JobEnded,
    JobStatus,
    Named,
    ProblemDetail,
    ServiceLimits,
)
from vp3d_engine.service.store import TERMINAL, Job, JobStore
from vp3d_engine.service.upload import Limits, Problem, check_video, receive_upload
from vp3d_engine.service.workers import WorkerPool

__all__ = ["Service", "jobs", "pages", "service_version", "system"]

WEB = Path(__file__).resolve().parent / "web"
MEDIA_TYPES = {".bvh": "text/plain", ".glb": "model/gltf-binary", ".json": "application/json",
               ".npz": "application/octet-stream", ".fbx": "application/octet-stream", ".mp4": "video/mp4"}


@dataclass
class Service:
    """What the routes share (``app.state.service``)."""

    store: JobStore
    pool: WorkerPool
    limits: Limits
    token: str
    workers: int
    max_queue: int
    expire_hours: float
    three: Path
    swagger: Path
    uploads_in_flight: int = 0

    @property
    def max_uploads_in_flight(self) -> int:
        return 2 * self.workers + 4


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]
PROBLEMS: dict[int | str, dict[str, Any]] = {code: {"model": ProblemDetail} for code in (400, 401, 403, 404, 413,
                                                                                          415, 422, 503)}

system = APIRouter(prefix="/api", tags=["service"], responses=PROBLEMS)
jobs = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=PROBLEMS)
pages = APIRouter(include_in_schema=False)


def service_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vp3d")
    except PackageNotFoundError:
        return "unknown"


@system.get("/health", response_model=Health, summary="Is the service up (no token needed)")
def health(service: ServiceDep) -> Health:
    return Health(ok=True, version=service_version(), workers=service.workers, running=service.pool.running(),
                  queued=service.store.count("queued"))


@system.get("/backends", response_model=Backends, summary="What the upload form takes")
def backends(service: ServiceDep) -> Backends:
    from converters.options import option
    from converters.rigs import PRESETS
    from vp3d_engine.checkpoints import installed_checkpoints
    from vp3d_engine.detectors.registry import detector_names, detector_spec
    from vp3d_engine.lifters.registry import lifter_names, lifter_spec
    from vp3d_engine.options import describe_options

    return Backends(
        detectors=[Named(name=n, description=detector_spec(n).description) for n in detector_names(public=True)],
        lifters=[Named(name=n, description=lifter_spec(n).description) for n in lifter_names(public=True)],
        checkpoints=[Checkpoint(name=n) for n in sorted(installed_checkpoints())], rigs=list(PRESETS),
        formats=option("formats").values(), limits=ServiceLimits(**service.limits.describe()),
        options=describe_options("service"), token_required=bool(service.token))


def _job_or_404(service: Service, job_id: str) -> Job:
    job = service.store.get(job_id) if len(job_id) <= 64 and job_id.replace("-", "").replace("_", "").isalnum() \
        else None
    if job is None:
        raise Problem(404, f"no job {job_id[:64]!r} (finished jobs expire after {service.expire_hours:g} h)")
    return job


def _status(service: Service, job: Job) -> JobStatus:
    return JobStatus(**job.public(service.store.queue_position(job)))


@jobs.post("", status_code=201, response_model=JobCreated, summary="Upload a video as a new job",
           description="multipart/form-data: the video in the field `file`, options as fields (see GET "
                       "/api/backends: `options`). Checked before it is queued: 413 too large, 415 not a video, "
                       "422 a wrong option or a video longer than the limits, 503 the queue is full.")
async def submit(request: Request, service: ServiceDep) -> JobCreated:
    from converters.errors import Vp3dError
    from vp3d_engine.service.runner import options_from_form

    store = service.store
    if store.count("queued") >= service.max_queue or service.uploads_in_flight >= service.max_uploads_in_flight:
        raise Problem(503, "the queue is full; try again in a minute", {"Retry-After": "60"})
    job_id = store.new_id()
    folder = store.folder(job_id)
    service.uploads_in_flight += 1
    try:
        folder.mkdir(parents=True)
        upload = await receive_upload(request, folder, service.limits.max_upload_bytes)
        try:
            options = options_from_form(upload.fields)
        except Vp3dError as exc:
            raise Problem(422, str(exc)) from None
        await asyncio.to_thread(check_video, folder / upload.stored, upload.name, service.limits,
                                options.get("start"), options.get("end"))
        store.add(job_id, upload.name[:200], upload.stored, options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing of a refused upload stays
        raise
    finally:
        service.uploads_in_flight -= 1
    return JobCreated(id=job_id)


@jobs.get("/{job_id}", response_model=JobStatus, summary="A job's state")
def status(job_id: str, service: ServiceDep) -> JobStatus:
    return _status(service, _job_or_404(service, job_id))


@jobs.get("/{job_id}/events", summary="A job's states as Server-Sent Events, until it ends",
          response_class=StreamingResponse)
async def events(job_id: str, request: Request, service: ServiceDep) -> StreamingResponse:
    _job_or_404(service, job_id)

    async def stream() -> AsyncIterator[str]:
        last = None
        while not await request.is_disconnected():
            job = service.store.get(job_id)
            if job is None:
                yield "event: gone\ndata: {}\n\n"
                return
            now = json.dumps(job.public(service.store.queue_position(job)))
            if now != last:
                last = now
                yield f"data: {now}\n\n"
            if job.state in TERMINAL:
                return
            await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@jobs.get("/{job_id}/files/{name}", summary="A result file", response_class=FileResponse)
def result_file(job_id: str, name: str, service: ServiceDep) -> FileResponse:
    job = _job_or_404(service, job_id)
    if name not in job.files:  # only the names the job wrote: never a path from the client
        raise Problem(404, f"job {job_id} has no file {name[:80]!r}; it has {', '.join(job.files) or 'none yet'}")
    path = service.store.folder(job_id) / "out" / name
    return FileResponse(path, media_type=MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream"),
                        filename=name)


@jobs.get("/{job_id}/video", summary="The uploaded video", response_class=FileResponse)
def video(job_id: str, service: ServiceDep) -> FileResponse:
    job = _job_or_404(service, job_id)
    return FileResponse(service.store.folder(job_id) / job.upload, media_type="video/mp4")


@jobs.delete("/{job_id}", response_model=JobEnded, summary="Cancel a job, or delete a finished one")
def delete(job_id: str, service: ServiceDep) -> JobEnded:
    job = _job_or_404(service, job_id)
    if job.state in ("queued", "running"):
        service.store.update(job_id, state="cancelled", finished=time.time(), error="cancelled by the user")
        service.pool.cancel(job_id)
        shutil.rmtree(service.store.folder(job_id) / "out", ignore_errors=True)
        return JobEnded(id=job_id, state="cancelled")
    service.store.delete(job_id)
    return JobEnded(id=job_id, state="deleted")


@pages.get("/")
@pages.get("/jobs/{job_id}")
def page(job_id: str = "") -> FileResponse:
    return FileResponse(WEB / "index.html", media_type="text/html")


@pages.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


def _file_under(root: Path, rest: str) -> FileResponse:
    target = (root / rest).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        raise HTTPException(404, "not found")
    media = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".png": "image/png"}.get(target.suffix)
    return FileResponse(target, media_type=media)


@pages.get("/static/{path:path}")
def static(path: str, service: ServiceDep) -> FileResponse:
    for prefix, root in (("three/", service.three), ("swagger/", service.swagger)):
        if path.startswith(prefix):
            return _file_under(root, path[len(prefix):])
    return _file_under(WEB, path)


@pages.get("/docs")
def docs(request: Request, service: ServiceDep) -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_html

    if not (service.swagger / "swagger-ui-bundle.js").is_file():
        raise Problem(404, "the API docs page needs Swagger UI (bash scripts/setup_node_tools.sh installs it); the "
                           "schema itself is at /openapi.json")
    return get_swagger_ui_html(openapi_url=str(request.app.openapi_url), title="vp3d serve: API",
                               swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                               swagger_css_url="/static/swagger/swagger-ui.css",
                               swagger_favicon_url="/favicon.ico")
