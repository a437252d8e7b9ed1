"""The service's answers as typed models: what ``/docs`` and ``/openapi.json`` show, and what the
routes return (FastAPI checks each answer against its model)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Backends", "Checkpoint", "Health", "JobCreated", "JobEnded", "JobStatus", "Named", "ProblemDetail",
           "ServiceLimits"]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class ProblemDetail(BaseModel):
    """Every refusal (4xx, 5xx): one sentence that says what to do."""

    detail: str = Field(examples=["rig must be one of mixamo, ue, h36m, not 'robot'"])


class JobCreated(BaseModel):
    id: str = Field(description="the job's id: its URL is /jobs/{id}, its state GET /api/jobs/{id}")


class JobStatus(BaseModel):
    id: str
    state: JobState
    stage: str = Field(description="detect, track, lift, world, solve, write (while running)")
    progress: float = Field(ge=0, le=1, description="share of the whole job done")
    queue_position: int | None = Field(description="1: next to run (queued jobs only)")
    timings: dict[str, float] = Field(description="seconds per stage, when done")
    error: str | None = Field(description="why it failed or was cancelled")
    files: list[str] = Field(description="result files: GET /api/jobs/{id}/files/{name}")
    name: str = Field(description="the uploaded file's name")
    created: float = Field(description="seconds since 1970")
    options: dict[str, Any] = Field(description="the options the job runs with (the form's fields, checked)")


class JobEnded(BaseModel):
    id: str
    state: Literal["cancelled", "deleted"]


class Health(BaseModel):
    ok: bool
    version: str
    workers: int
    running: int
    queued: int


class Named(BaseModel):
    name: str
    description: str = ""


class Checkpoint(BaseModel):
    name: str


class ServiceLimits(BaseModel):
    max_upload_mb: float
    max_duration_s: float
    max_frames: int
    max_pixel_frames: float


class Backends(BaseModel):
    """What the form takes: the detectors, lifters, installed checkpoints, rigs and formats, the
    limits of one job, and every option (its kind, choices or bounds, default, help)."""

    detectors: list[Named]
    lifters: list[Named]
    checkpoints: list[Checkpoint]
    rigs: list[str]
    formats: list[str]
    limits: ServiceLimits
    options: list[dict[str, Any]]
    token_required: bool
