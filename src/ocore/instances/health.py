"""The health score of an instance: a few explainable factors, weighted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ocore.core.db import utcnow
from ocore.instances.models import Instance

AVAILABILITY = {"running": 100, "starting": 60, "provisioning": 50, "stopped": 30}
GRADES = ((90, "A"), (75, "B"), (60, "C"), (40, "D"))


@dataclass(frozen=True)
class Factor:
    name: str
    score: int
    weight: float
    details: str

    @property
    def weighted(self) -> float:
        return round(self.score * self.weight, 2)


def _freshness(last_seen: datetime | None, now: datetime) -> tuple[int, str]:
    if last_seen is None:
        return 0, "never seen by a health check"
    age = now - last_seen
    if age <= timedelta(minutes=5):
        return 100, "seen in the last 5 minutes"
    if age <= timedelta(hours=1):
        return 60, "seen in the last hour"
    return 0, f"last seen {int(age.total_seconds() // 3600)} h ago"


def _stability(restarts: int) -> int:
    if restarts == 0:
        return 100
    if restarts <= 3:
        return 70
    return 40 if restarts <= 10 else 10


def compute(instance: Instance, now: datetime | None = None) -> tuple[int, str, list[Factor]]:
    now = now or utcnow()
    freshness, freshness_details = _freshness(instance.last_seen_at, now)
    pdf = {"ok": 100, None: 50}.get(instance.wkhtmltopdf_status, 0)
    factors = [
        Factor(
            "availability",
            AVAILABILITY.get(instance.status, 0),
            0.4,
            f"status {instance.status}",
        ),
        Factor("freshness", freshness, 0.2, freshness_details),
        Factor(
            "stability",
            _stability(instance.restart_count),
            0.2,
            f"{instance.restart_count} restarts",
        ),
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
