"""The FastAPI application: routers, error handlers, middleware, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.sdk.trace import TracerProvider

from ocore import __version__
from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.core.logging import RequestContextMiddleware, configure_logging
from ocore.core.loopback import loopback_client
from ocore.core.metrics import install_metrics
from ocore.core.problems import document_problems, install_problem_handlers
from ocore.core.tracing import setup_tracing
from ocore.deployments.router import environment_router as environment_deployments_router
from ocore.deployments.router import router as deployments_router
from ocore.environments.mail import router as environment_mail_router
from ocore.environments.router import project_router as project_environments_router
from ocore.environments.router import router as environments_router
from ocore.health import router as health_router
from ocore.instances.router import router as instances_router
from ocore.instances.templates import router as templates_router
from ocore.jobs.router import router as jobs_router
from ocore.jobs.runtime import JobSystem
from ocore.neutralization.router import project_router as neutralization_profile_router
from ocore.neutralization.router import router as neutralization_router
from ocore.projects.router import router as projects_router
from ocore.servers.router import router as servers_router
from ocore.settings import Settings, get_settings
from ocore.shares.gateway import router as share_gateway_router
from ocore.shares.public import router as shares_public_router
from ocore.shares.router import router as shares_router
from ocore.webhooks.router import router as webhooks_router


def create_app(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """Build the app. Opens no connection; ``ocore serve`` migrates before serving.

    ``tracer_provider`` receives the traces instead of one built from the settings
    (which still decide whether there are any).
    """
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs = JobSystem(settings, app.state.database, app.state.secret_box)
        app.state.jobs = jobs
        app.state.loopback_client = loopback_client()
        jobs.start()
        try:
            yield
        finally:
            await jobs.stop()
            await app.state.loopback_client.aclose()
            await app.state.database.dispose()
            if traces is not None:
                traces.shutdown()

    app = FastAPI(
        title="ocore",
        version=__version__,
        summary="Self-hostable control plane for Odoo hosting",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = Database(settings.effective_database_url)
    app.state.secret_box = SecretBox(settings.effective_secret_key)

    api = APIRouter(prefix="/api")
    # First: routes are matched in order, and a shared page's asset requests are
    # the app's most frequent (a third of their routing cost was the routes before).
    api.include_router(shares_public_router)
    api.include_router(share_gateway_router)
    api.include_router(health_router)
    api.include_router(jobs_router)
    api.include_router(instances_router)
    api.include_router(templates_router)
    api.include_router(environments_router)
    api.include_router(project_environments_router)
    api.include_router(environment_mail_router)
    api.include_router(neutralization_profile_router)
    api.include_router(deployments_router)
    api.include_router(environment_deployments_router)
    api.include_router(shares_router)
    api.include_router(neutralization_router)
    api.include_router(webhooks_router)
    api.include_router(projects_router)
    api.include_router(servers_router)
    app.include_router(api)

    install_problem_handlers(app)

    def openapi() -> dict[str, Any]:
        # FastAPI's documented way to change the generated document (built once, then cached).
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    traces = setup_tracing(app, settings, tracer_provider)
    install_metrics(app, settings)
    return app
