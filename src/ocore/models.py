"""Every table, imported in one place for alembic and for mapper configuration."""

from ocore.core.db import Base
from ocore.deployments.models import (
    Deployment,
    DeploymentEvidence,
    DeploymentFinding,
    DeploymentStep,
    Snapshot,
)
from ocore.environments.models import Environment, Promotion
from ocore.instances.models import Domain, HealthCheck, Instance, Template
from ocore.jobs.models import Job, JobStep
from ocore.neutralization.models import NeutralizationItem, NeutralizationProfile
from ocore.orgs.models import ApiToken, AuditEntry, Organization, User
from ocore.projects.models import Project
from ocore.servers.models import Server
from ocore.shares.models import ShareLink
from ocore.webhooks.models import WebhookDelivery

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Deployment",
    "DeploymentEvidence",
    "DeploymentFinding",
    "DeploymentStep",
    "Domain",
    "Environment",
    "HealthCheck",
    "Instance",
    "Job",
    "JobStep",
    "NeutralizationItem",
    "NeutralizationProfile",
    "Organization",
    "Project",
    "Promotion",
    "Server",
    "ShareLink",
    "Snapshot",
    "Template",
    "User",
    "WebhookDelivery",
]
