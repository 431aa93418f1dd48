"""Deployment rows → the API's deployment objects, and the log views (download, summary)."""

from __future__ import annotations

from typing import Any

from ocore.deployments.models import (
    Deployment,
    DeploymentEvidence,
    DeploymentFinding,
    DeploymentStep,
)
from ocore.deployments.schemas import (
    DeploymentOut,
    EvidenceOut,
    FindingOut,
    RiskOut,
    StepOut,
    Validation,
    VerdictOut,
    Waiver,
)
from ocore.hosts.logparse import LogSummarizer

ODOO_STEPS = ("update modules", "run tests")
EMPTY_SUMMARY: dict[str, Any] = {
    "success": False,
    "odooVersion": None,
    "durationMs": 0,
    "totalModules": 0,
    "updatedModules": [],
    "errorCount": 0,
    "warningCount": 0,
    "warningGroups": [],
    "sections": [],
}


def evidence_out(row: DeploymentEvidence) -> EvidenceOut:
    return EvidenceOut(
        gate_key=row.gate_key,
        name=row.name,
        required=row.required,
        status=row.status,
        outcome=row.outcome,
        summary=row.summary,
        log_refs=[str(r) for r in row.log_refs],
        artifact_refs=[str(r) for r in row.artifact_refs],
        validation=Validation.model_validate(row.validation) if row.validation else None,
        waiver=Waiver.model_validate(row.waiver) if row.waiver else None,
        started_at=row.started_at,
        completed_at=row.completed_at,
        duration_ms=row.duration_ms,
    )


def finding_out(row: DeploymentFinding) -> FindingOut:
    return FindingOut.model_validate(
        {
            "class": row.finding_class,
            "severity": row.severity,
            "confidence": row.confidence,
            "evidenceExcerpt": row.evidence_excerpt,
            "gateAction": row.gate_action,
            "metadata": row.details,
        }
    )


def deployment_out(
    row: Deployment,
    steps: list[DeploymentStep],
    evidence: list[DeploymentEvidence],
    findings: list[DeploymentFinding],
) -> DeploymentOut:
    return DeploymentOut(
        id=row.id,
        project_id=row.project_id,
        instance_id=row.instance_id,
        status=row.status,
        trigger_type=row.trigger_type,
        branch=row.branch or row.tag,
        commit_sha=row.commit_sha,
        commit_message=row.commit_message,
        commit_author=row.commit_author,
        commit_author_avatar=row.commit_author_avatar,
        previous_commit_sha=row.previous_commit_sha,
        previous_deployment_id=row.previous_deployment_id,
        active_color=row.active_color,
        image_tag=row.image_tag,
        snapshot_id=row.snapshot_id,
        error_message=row.error_message,
        risk=RiskOut(level=row.risk_level, score=row.risk_score),
        success_verdict=VerdictOut.model_validate(row.success_verdict)
        if row.success_verdict
        else None,
        steps=[StepOut.model_validate(s) for s in steps],
        evidence=[evidence_out(e) for e in evidence],
        findings=[finding_out(f) for f in findings],
        started_at=row.started_at,
        completed_at=row.completed_at,
        duration_ms=row.duration_ms,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def log_text(row: Deployment, steps: list[DeploymentStep]) -> str:
    """The whole build log with a metadata header, as a person would want to file it."""
    header = [
        f"# ocore deployment {row.id}",
        f"# project: {row.project_id}",
        f"# instance: {row.instance_id}",
        f"# trigger: {row.trigger_type}",
        f"# commit: {row.commit_sha or '-'} ({row.branch or row.tag or '-'})",
        f"# status: {row.status}",
        f"# started: {row.started_at.isoformat() if row.started_at else '-'}",
        f"# completed: {row.completed_at.isoformat() if row.completed_at else '-'}",
    ]
    if row.error_message:
        header.append(f"# error: {row.error_message}")
    body: list[str] = []
    for step in steps:
        duration = f"{step.duration_ms} ms" if step.duration_ms is not None else "running"
        body.append(f"==> {step.name} [{step.status}, {duration}]")
        body.append(step.output.rstrip("\n"))
    return "\n".join(header) + "\n\n" + "\n".join(body) + "\n"


def log_summary(steps: list[DeploymentStep]) -> dict[str, Any]:
    """The Odoo log of the module update (and tests) parsed; works mid-build too."""
    odoo = [s for s in steps if s.name in ODOO_STEPS]
    if not odoo:
        return dict(EMPTY_SUMMARY)
    summarizer = LogSummarizer(keep="none")
    for step in odoo:
        summarizer.feed(step.output)
    summarizer.close()
    return summarizer.summary().to_dict()
