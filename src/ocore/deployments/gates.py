"""Gates of a deployment: evidence per gate, findings from Odoo's log, risk and verdict."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete

from ocore.deployments.models import DeploymentEvidence, DeploymentFinding
from ocore.git.modules import ModuleChanges
from ocore.hosts.logparse import Finding, LogSummarizer, findings, redact, risk, verdict
from ocore.jobs.context import JobContext
from ocore.projects.models import Project

GATE_NAMES = {
    "module_update": "Module update",
    "tests": "Tests",
    "health_check": "Health check",
}


@dataclass
class GateRun:
    key: str
    required: bool
    passed: bool
    summary: str
    exit_code: int | None
    duration_ms: int
    excerpt: str
    reasons: list[str] = field(default_factory=list)


class Gates:
    def __init__(self, project: Project, environment_type: str) -> None:
        gate = (
            project.test_gate_production
            if environment_type == "production"
            else project.test_gate_staging
        )
        self.tests_required = gate == "block"
        self.production = environment_type == "production"
        self.runs: dict[str, GateRun] = {}
        self.findings: list[Finding] = []
        self.summaries: dict[str, Any] = {}
        self.changed_modules = 0
        self.change_points = 0
        self.change_notes: list[str] = []

    def note_first_deploy(self, modules: list[str]) -> None:
        self.changed_modules = len(modules)
        self.change_notes.append(f"first deployment: {len(modules)} modules to install")

    def note_changes(self, changes: ModuleChanges) -> None:
        self.changed_modules = len(changes.modules)
        bumped = changes.version_bumped
        requirements = [f for f in changes.other_files if f.endswith("requirements.txt")]
        # Version bumps run migrations; new requirements may not be installed yet.
        self.change_points += min(5 * len(bumped), 20) + (10 if requirements else 0)
        if bumped:
            self.change_notes.append(f"manifest version bumps: {', '.join(bumped)}")
        if requirements:
            self.change_notes.append("Python requirements changed")

    def record_odoo_run(self, key: str, exit_code: int, lines: list[str], started: float) -> None:
        summarizer = LogSummarizer()
        summarizer.feed_lines(lines)
        summarizer.close()
        summary = summarizer.summary()
        found = findings(summary, summarizer.records)
        self.findings += found
        self.summaries[key] = summary.to_dict()
        judged = verdict(summary, found)
        passed = exit_code == 0 and judged.status == "passed"
        required = key != "tests" or self.tests_required
        reasons = [] if passed else [judged.reason or f"exit code {exit_code}"]
        self.runs[key] = GateRun(
            key=key,
            required=required,
            passed=passed,
            summary=judged.label if passed else f"{judged.label}: {reasons[0]}",
            exit_code=exit_code,
            duration_ms=int((time.perf_counter() - started) * 1000),
            excerpt=redact("\n".join(lines[-20:]))[-4000:],
            reasons=reasons,
        )

    def record_health(self, passed: bool, summary: str, started: float) -> None:
        self.runs["health_check"] = GateRun(
            key="health_check",
            required=True,
            passed=passed,
            summary=redact(summary)[:500],
            exit_code=None,
            duration_ms=int((time.perf_counter() - started) * 1000),
            excerpt="" if passed else redact(summary)[-4000:],
        )

    def blocked(self, key: str) -> bool:
        run = self.runs.get(key)
        return run is not None and run.required and not run.passed

    def failure(self, key: str) -> str:
        run = self.runs[key]
        return f"{GATE_NAMES[key]} failed: {run.reasons[0] if run.reasons else run.summary}"

    def outcome(self, *, failed: bool) -> dict[str, Any]:
        assessed = risk(self.findings, self.changed_modules)
        score = min(100, assessed.score + self.change_points + (15 if self.production else 0))
        level = (
            "high"
            if score >= 60 or assessed.level == "high"
            else ("medium" if score >= 25 or assessed.level == "medium" else "low")
        )
        warnings_only = [r for r in self.runs.values() if not r.passed and not r.required]
        if failed:
            first = next((r for r in self.runs.values() if not r.passed and r.required), None)
            reason = self.failure(first.key) if first else "the deployment did not complete"
            verdict_out = {
                "status": "failed",
                "label": "Failed",
                "clean": False,
                "waived": False,
                "legacy": False,
                "reason": reason,
            }
        else:
            clean = not warnings_only and not any(
                f.gate_action in ("block", "warn") for f in self.findings
            )
            warned = "; ".join(self.failure(r.key) for r in warnings_only)
            verdict_out = {
                "status": "passed",
                "label": "Passed" if clean else "Passed with warnings",
                "clean": clean,
                "waived": False,
                "legacy": False,
                "reason": warned or "; ".join(self.change_notes) or "all gates passed",
            }
        return {
            "risk_level": level,
            "risk_score": score,
            "success_verdict": verdict_out,
            "log_summary": self.summaries.get("module_update") or self.summaries.get("tests"),
        }

    async def save(self, context: JobContext, deployment_id: uuid.UUID) -> None:
        async with context.session() as session:
            await session.execute(
                delete(DeploymentEvidence).where(DeploymentEvidence.deployment_id == deployment_id)
            )
            await session.execute(
                delete(DeploymentFinding).where(DeploymentFinding.deployment_id == deployment_id)
            )
            for run in self.runs.values():
                session.add(
                    DeploymentEvidence(
                        deployment_id=deployment_id,
                        gate_key=run.key,
                        name=GATE_NAMES[run.key],
                        required=run.required,
                        status="passed" if run.passed else "failed",
                        outcome="pass" if run.passed else ("block" if run.required else "warn"),
                        summary=run.summary,
                        log_refs=[f"steps/{run.key}"],
                        artifact_refs=[],
                        validation={
                            "mode": "odoo" if run.exit_code is not None else "http",
                            "profile": run.key,
                            "exitCode": run.exit_code,
                            "durationMs": run.duration_ms,
                            "logExcerpt": run.excerpt,
                            "failureCard": {"reasons": run.reasons} if run.reasons else {},
                            "artifactRefs": [],
                        },
                        duration_ms=run.duration_ms,
                    )
                )
            for finding in self.findings:
                data = finding.to_dict()
                session.add(
                    DeploymentFinding(
                        deployment_id=deployment_id,
                        finding_class=data["class"],
                        severity=data["severity"],
                        confidence=data["confidence"],
                        evidence_excerpt=data["evidenceExcerpt"],
                        gate_action=data["gateAction"],
                        details=data["metadata"],
                    )
                )
