"""The health score of an instance: named, weighted factors from its probe history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ocore.core.db import utcnow
from ocore.instances.models import Instance

GRADES = ((90, "A"), (75, "B"), (60, "C"), (40, "D"))


@dataclass(frozen=True)
class History:
    """Probes of the last 24 hours."""

    checks: int = 0
    passed: int = 0
    median_ms: int | None = None


@dataclass(frozen=True)
class Factor:
    name: str
    score: int
    weight: float
    details: str

    @property
    def weighted(self) -> float:
        return round(self.score * self.weight, 2)


def _availability(instance: Instance, history: History) -> Factor:
    if history.checks:
        ratio = history.passed / history.checks
        details = f"{history.passed}/{history.checks} health checks passed in 24 h"
        return Factor("availability", round(ratio * 100), 0.35, details)
    score = 50 if instance.status in ("provisioning", "starting") else 0
    return Factor("availability", score, 0.35, f"no health check yet (status {instance.status})")


def _response_time(history: History) -> Factor:
    ms = history.median_ms
    if ms is None:
        return Factor("response_time", 0, 0.15, "no answer measured")
    score = 100 if ms <= 300 else 70 if ms <= 1000 else 40 if ms <= 3000 else 10
    return Factor("response_time", score, 0.15, f"median /web/health {ms} ms over 24 h")


def _freshness(last_seen: datetime | None, now: datetime) -> Factor:
    if last_seen is None:
        return Factor("freshness", 0, 0.15, "never seen healthy")
    age = now - last_seen
    if age <= timedelta(minutes=5):
        return Factor("freshness", 100, 0.15, "seen healthy in the last 5 minutes")
    if age <= timedelta(hours=1):
        return Factor("freshness", 60, 0.15, "seen healthy in the last hour")
    return Factor(
        "freshness", 0, 0.15, f"last seen healthy {int(age.total_seconds() // 3600)} h ago"
    )


def _stability(restarts: int) -> Factor:
    score = 100 if restarts == 0 else 70 if restarts <= 3 else 40 if restarts <= 10 else 10
    return Factor("stability", score, 0.15, f"{restarts} restarts")


def compute(
    instance: Instance, history: History | None = None, now: datetime | None = None
) -> tuple[int, str, list[Factor]]:
    now = now or utcnow()
    history = history or History()
    pdf = {"ok": 100, None: 50}.get(instance.wkhtmltopdf_status, 0)
    factors = [
        _availability(instance, history),
        _response_time(history),
        _freshness(instance.last_seen_at, now),
        _stability(instance.restart_count),
        Factor(
            "pdf_rendering", pdf, 0.1, f"wkhtmltopdf {instance.wkhtmltopdf_status or 'unknown'}"
        ),
        Factor(
            "configuration",
            50 if instance.restart_required else 100,
            0.1,
            "a change waits for a restart" if instance.restart_required else "applied",
        ),
    ]
    score = round(sum(f.weighted for f in factors))
    grade = next((g for threshold, g in GRADES if score >= threshold), "F")
    return score, grade, factors
