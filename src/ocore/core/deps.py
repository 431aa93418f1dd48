"""Dependencies for what the app holds per process (settings, secret box, clients, jobs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import httpx
from fastapi import Depends, Request

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.settings import Settings

if TYPE_CHECKING:
    from ocore.jobs.runtime import JobSystem


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


def get_loopback_client(request: Request) -> httpx.AsyncClient:
    """The app's client for upstreams on 127.0.0.1 (``ocore.core.loopback``)."""
    client: httpx.AsyncClient = request.app.state.loopback_client
    return client


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
LoopbackClientDep = Annotated[httpx.AsyncClient, Depends(get_loopback_client)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]


def get_job_system(request: Request) -> JobSystem:
    jobs: JobSystem = request.app.state.jobs
    return jobs


JobSystemDep = Annotated["JobSystem", Depends(get_job_system)]
