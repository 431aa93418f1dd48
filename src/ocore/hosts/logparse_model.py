"""Data of the Odoo log analysis (summary, findings, risk, verdict) and the
classification of log records shared by the summarizer and the findings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ocore.hosts.logparse_records import LEVEL_RANK, LogRecord

Severity = Literal["critical", "high", "medium", "low", "info"]
GateAction = Literal["block", "warn", "none"]

TEST_RESULT = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests")
MODULE_TEST_FAILURES = re.compile(r"Module (\S+): (\d+) failures, (\d+) errors of (\d+) tests")


def is_test_logger(logger: str) -> bool:
    return ".tests" in logger or logger.startswith("odoo.tests")


def is_test_failure(record: LogRecord) -> bool:
    """An ERROR record that reports failed or erroring tests."""
    if record.rank < LEVEL_RANK["ERROR"]:
        return False
    msg = record.first_line
    if is_test_logger(record.logger):
        if msg.startswith(("FAIL:", "ERROR:")):
            return True
        m = TEST_RESULT.search(msg)
        return m is not None and (int(m[1]) + int(m[2])) > 0
    return msg.startswith("At least one test failed") or bool(MODULE_TEST_FAILURES.match(msg))


def categorize(logger: str, message: str) -> str:
    """Category of a WARNING/ERROR message (first line), first rule that matches:

    ``test_failure`` (test loggers, test failure reports), ``access_rules`` (models
    without access rules), ``deprecation`` (python ``DeprecationWarning`` and
    "deprecated" messages), ``field_conflict`` (two fields with the same label),
    ``field_definition`` (other ``odoo.fields`` / field parameter warnings),
    ``registry`` (``odoo.modules.*`` and server start failures: registry, module
    states, missing or invalid modules), ``view`` (views, QWeb, data files),
    ``http`` (werkzeug, odoo.http), else ``other``.
    """
    msg = message[:500]
    lower = msg.lower()
    if (
        is_test_logger(logger)
        or msg.startswith("At least one test failed")
        or MODULE_TEST_FAILURES.match(msg)
    ):
        return "test_failure"
    if "no access rules" in lower:
        return "access_rules"
    if "deprecat" in lower:
        return "deprecation"
    if "same label" in lower:
        return "field_conflict"
    if logger == "odoo.fields" or lower.startswith("field ") or "unknown parameter" in lower:
        return "field_definition"
    if logger.startswith("odoo.modules") or (
        logger == "odoo.service.server" and "database" in lower
    ):
        return "registry"
    if logger.endswith(("ir_ui_view", "ir_qweb", "odoo.tools.convert")):
        return "view"
    if logger in ("werkzeug", "odoo.http") or logger.startswith("odoo.http."):
        return "http"
    return "other"


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    start_line: int
    end_line: int
    line_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "endLine": self.end_line,
            "lineCount": self.line_count,
            "name": self.name,
            "startLine": self.start_line,
        }


@dataclass(frozen=True, slots=True)
class WarningGroup:
    """Records of one logger whose normalized first lines are equal."""

    category: str
    count: int
    logger: str
    message: str
    severity: str
    """``warning``, ``error`` or ``critical``: the worst level seen in the group."""
    first_line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "count": self.count,
            "logger": self.logger,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(frozen=True, slots=True)
class LogSummary:
    """The ``GET …/logs/summary`` payload (``to_dict``) plus the facts behind it."""

    duration_ms: int
    error_count: int
    odoo_version: str | None
    sections: tuple[Section, ...]
    success: bool
    total_modules: int
    updated_modules: tuple[str, ...]
    warning_count: int
    warning_groups: tuple[WarningGroup, ...]
    # not in the API payload
    line_count: int = 0
    record_count: int = 0
    loading_started: bool = False
    registry_loaded: bool = False
    registry_failed: bool = False
    failed_module: str | None = None
    """The module being loaded when the registry failed, if any."""
    not_loaded_modules: tuple[str, ...] = ()
    tests_run: int = 0
    tests_failed: int = 0
    tests_errors: int = 0
    tests_failed_seen: bool = False

    @property
    def tests_passed(self) -> bool:
        return not self.tests_failed_seen and self.tests_failed + self.tests_errors == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "durationMs": self.duration_ms,
            "errorCount": self.error_count,
            "odooVersion": self.odoo_version,
            "sections": [s.to_dict() for s in self.sections],
            "success": self.success,
            "totalModules": self.total_modules,
            "updatedModules": list(self.updated_modules),
            "warningCount": self.warning_count,
            "warningGroups": [g.to_dict() for g in self.warning_groups],
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the log shows; ``to_dict`` is the deployment's ``findings[]`` shape."""

    kind: str
    severity: Severity
    confidence: float
    evidence_excerpt: str
    gate_action: GateAction
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.kind,
            "confidence": self.confidence,
            "evidenceExcerpt": self.evidence_excerpt,
            "gateAction": self.gate_action,
            "metadata": {"title": self.title, **self.metadata},
            "severity": self.severity,
        }


@dataclass(frozen=True, slots=True)
class Risk:
    level: Literal["low", "medium", "high"]
    score: int

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "score": self.score}


@dataclass(frozen=True, slots=True)
class SuccessVerdict:
    status: Literal["passed", "failed"]
    label: str
    clean: bool
    reason: str
    legacy: bool
    waived: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "label": self.label,
            "legacy": self.legacy,
            "reason": self.reason,
            "status": self.status,
            "waived": self.waived,
        }
