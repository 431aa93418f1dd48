"""Findings, risk and success verdict of a deployment, from its Odoo log.

Finding classes: class — what produces it — severity, gate action, confidence.

- ``registry_load_failure`` — ``Failed to load registry`` / ``Failed to initialize
  database`` — critical, block, 0.95; loading started but the log ends before
  ``Registry loaded`` — high, block, 0.6.
- ``module_not_loaded`` — ``Some modules are not loaded …`` (ERROR) — high, block,
  0.9; ``invalid module names, ignored`` / ``not installable, skipped`` — medium,
  warn, 0.9.
- ``test_failure`` — ``FAIL:``/``ERROR:`` of a test and failed test reports, one per
  module — high, block, 0.95.
- ``missing_access_rules`` — ``… have no access rules …``, one per module — medium,
  warn, 0.9.
- ``traceback`` — any other ERROR/CRITICAL with a traceback, one per logger and
  normalized message — high, block, 0.85.
- ``error_logged`` — any other ERROR/CRITICAL without traceback — high, block, 0.7.
- ``deprecation`` — deprecation warnings, one per message — low, none, 0.8.
- ``field_conflict`` — ``Two fields … have the same label``, one per message — low,
  none, 0.7.

Any ERROR blocks: Odoo logs ERROR only when something went wrong, so a deploy
that logged one is not trusted unless a person waives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ocore.hosts.logparse_model import (
    Finding,
    GateAction,
    LogSummary,
    Risk,
    Severity,
    SuccessVerdict,
    categorize,
    is_test_failure,
    is_test_logger,
)
from ocore.hosts.logparse_records import (
    LEVEL_RANK,
    LogRecord,
    exception_line,
    excerpt,
    normalize_message,
    redact,
)

SEVERITY_POINTS: dict[str, int] = {"critical": 60, "high": 35, "medium": 12, "low": 3, "info": 0}
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
_GATE_ORDER = {"block": 0, "warn": 1, "none": 2}
MAX_FINDINGS_PER_CLASS = 20

_TEST_MODULE = re.compile(r"odoo\.addons\.(\w+)\.tests")
_MODULE_FAILURES = re.compile(r"Module (\S+): \d+ failures")
_TEST_NAME = re.compile(r"^(?:FAIL|ERROR): (\S+)")
_ACL_MODULE = re.compile(r"in module (\w+)")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")
_MODULE_PATH = re.compile(r"/(\w+)/(?:data|views|security|models|wizards?|report|demo|tests)/")
_IGNORED = re.compile(r"ignored: (.*)$")


def classify(record: LogRecord) -> tuple[str, str] | None:
    """``(finding class, aggregation key)`` of a WARNING+ record, or ``None``."""
    rank = record.rank
    if rank < LEVEL_RANK["WARNING"]:
        return None
    msg = record.first_line
    if msg.startswith(("Failed to load registry", "Failed to initialize database")):
        return "registry_load_failure", ""
    if msg.startswith("Some modules are not loaded"):
        return "module_not_loaded", "missing"
    if "invalid module names" in msg or "not installable, skipped" in msg:
        return "module_not_loaded", "invalid"
    if is_test_failure(record) or (rank >= LEVEL_RANK["ERROR"] and is_test_logger(record.logger)):
        m = _TEST_MODULE.match(record.logger) or _MODULE_FAILURES.match(msg)
        return "test_failure", m[1] if m else ""
    if rank < LEVEL_RANK["ERROR"]:
        category = categorize(record.logger, msg)
        if category == "access_rules":
            m = _ACL_MODULE.search(msg)
            return "missing_access_rules", m[1] if m else ""
        if category in ("deprecation", "field_conflict"):
            return category, f"{record.logger} {normalize_message(msg)}"
        return None
    kind = "traceback" if record.has_traceback else "error_logged"
    return kind, f"{record.logger} {normalize_message(msg)}"


@dataclass(slots=True)
class _Bucket:
    records: list[LogRecord] = field(default_factory=list)
    count: int = 0


def findings(summary: LogSummary, records: Iterable[LogRecord]) -> list[Finding]:
    """Findings of a finished log: ``records`` are its records (all of them or the
    notable ones a :class:`LogSummarizer` kept); facts the records do not carry
    (a registry that never finished loading, test reports) come from ``summary``.
    Sorted: blocking first, then by severity and line."""
    buckets: dict[tuple[str, str], _Bucket] = {}
    for record in records:
        classified = classify(record)
        if classified is None:
            continue
        bucket = buckets.setdefault(classified, _Bucket())
        bucket.count += 1
        if len(bucket.records) < 50:
            bucket.records.append(record)
    out: list[Finding] = []
    per_class: dict[str, int] = {}
    for (kind, key), bucket in sorted(buckets.items(), key=lambda kv: -kv[1].count):
        if per_class.get(kind, 0) >= MAX_FINDINGS_PER_CLASS:
            continue
        if (
            kind == "test_failure"
            and not key
            and any(k == "test_failure" and k2 for k, k2 in buckets)
        ):
            continue  # the global report repeats what per-module findings say
        finding = _BUILDERS[kind](summary, key, bucket)
        per_class[kind] = per_class.get(kind, 0) + 1
        out.append(finding)
    out.extend(_from_summary(summary, {kind for kind, _ in buckets}))
    out.sort(key=lambda f: (_GATE_ORDER[f.gate_action], _SEVERITY_ORDER[f.severity], _line(f)))
    return out


def _line(finding: Finding) -> int:
    line = finding.metadata.get("line", 0)
    return line if isinstance(line, int) else 0


def _evidence(bucket: _Bucket, repeats: bool = True) -> tuple[LogRecord, str]:
    """The excerpt of the bucket's first record with a traceback (else its first)."""
    best = next((r for r in bucket.records if r.has_traceback), bucket.records[0])
    text = excerpt(best)
    if repeats and bucket.count > 1:
        text += f"\n(+{bucket.count - 1} more)"
    return best, text


def _registry(summary: LogSummary, key: str, bucket: _Bucket) -> Finding:
    best, text = _evidence(bucket, repeats=False)
    module = summary.failed_module
    if module is None:
        m = _MODULE_PATH.search(best.message)
        module = m[1] if m else None
    exc = exception_line(best)
    title = "The registry failed to load" + (f" while loading module {module}" if module else "")
    return Finding(
        "registry_load_failure", "critical", 0.95, text, "block", title,
        {"module": module, "logger": best.logger, "exception": exc, "count": bucket.count,
         "line": best.line},
    )  # fmt: skip


def _not_loaded(summary: LogSummary, key: str, bucket: _Bucket) -> Finding:
    best, text = _evidence(bucket)
    modules: list[str] = []
    for record in bucket.records:
        msg = record.first_line
        if key == "missing":
            modules += [a or b for a, b in _QUOTED.findall(msg)]
        elif m := _IGNORED.search(msg):
            modules += [n.strip() for n in m[1].split(",") if n.strip()]
        elif msg.startswith("module ") and ":" in msg:
            modules.append(msg[7:].split(":", 1)[0])
    modules = list(dict.fromkeys(modules))
    meta = {"modules": modules, "logger": best.logger, "count": bucket.count, "line": best.line}
    if key == "missing":
        title = f"Modules not loaded (missing dependencies or manifest): {', '.join(modules)}"
        return Finding("module_not_loaded", "high", 0.9, text, "block", title, meta)
    title = f"Requested modules ignored: {', '.join(modules)}"
    return Finding("module_not_loaded", "medium", 0.9, text, "warn", title, meta)


def _tests(summary: LogSummary, key: str, bucket: _Bucket) -> Finding:
    fails = [r for r in bucket.records if _TEST_NAME.match(r.first_line)]
    best, text = _evidence(_Bucket(fails, len(fails)) if fails else bucket)
    names = [m[1] for r in fails if (m := _TEST_NAME.match(r.first_line))]
    meta: dict[str, Any] = {
        "module": key or None,
        "logger": best.logger,
        "failures": sum(1 for r in fails if r.first_line.startswith("FAIL:")),
        "errors": sum(1 for r in fails if r.first_line.startswith("ERROR:")),
        "tests": names[:20],
        "line": best.line,
    }
    if not key:
        meta.update(failures=summary.tests_failed, errors=summary.tests_errors)
        meta["testsRun"] = summary.tests_run
    where = f" in module {key}" if key else ""
    title = f"Tests failed{where}" + (f": {', '.join(names[:3])}" if names else "")
    return Finding("test_failure", "high", 0.95, text, "block", title, meta)


def _access(summary: LogSummary, key: str, bucket: _Bucket) -> Finding:
    best, text = _evidence(bucket)
    models: list[str] = []
    for record in bucket.records:
        head = record.first_line.split(" have no access", 1)[0].split(" has no access", 1)[0]
        models += [a or b for a, b in _QUOTED.findall(head)] or head.split()[2:3]
    meta = {"module": key or None, "models": list(dict.fromkeys(models)), "count": bucket.count,
            "logger": best.logger, "line": best.line}  # fmt: skip
    title = "Models without access rules" + (f" in module {key}" if key else "")
    return Finding("missing_access_rules", "medium", 0.9, text, "warn", title, meta)


def _grouped(kind: str, severity: Severity, confidence: float, gate: GateAction) -> Any:
    def build(summary: LogSummary, key: str, bucket: _Bucket) -> Finding:
        best, text = _evidence(bucket)
        logger, _, message = key.partition(" ")
        meta: dict[str, Any] = {"logger": logger, "message": redact(message),
                                "count": bucket.count, "line": best.line}  # fmt: skip
        if kind == "traceback":
            meta["exception"] = exception_line(best)
        m = _MODULE_PATH.search(best.message) or _TEST_MODULE.match(logger)
        if m is not None:
            meta["module"] = m[1]
        title = {
            "traceback": f"Error with traceback from {logger}",
            "error_logged": f"Error logged by {logger}",
            "deprecation": "Deprecated API in use",
            "field_conflict": "Fields with the same label",
        }[kind]
        return Finding(kind, severity, confidence, text, gate, title, meta)

    return build


_BUILDERS: dict[str, Any] = {
    "registry_load_failure": _registry,
    "module_not_loaded": _not_loaded,
    "test_failure": _tests,
    "missing_access_rules": _access,
    "traceback": _grouped("traceback", "high", 0.85, "block"),
    "error_logged": _grouped("error_logged", "high", 0.7, "block"),
    "deprecation": _grouped("deprecation", "low", 0.8, "none"),
    "field_conflict": _grouped("field_conflict", "low", 0.7, "none"),
}


def _from_summary(summary: LogSummary, seen: set[str]) -> list[Finding]:
    """What the summary knows but no record showed (records not kept, log cut)."""
    out: list[Finding] = []
    if "registry_load_failure" not in seen:
        if summary.registry_failed:
            out.append(Finding(
                "registry_load_failure", "critical", 0.95, "Failed to load registry", "block",
                "The registry failed to load", {"module": summary.failed_module},
            ))  # fmt: skip
        elif summary.loading_started and not summary.registry_loaded:
            text = f"log ends at line {summary.line_count} before 'Registry loaded'"
            out.append(Finding(
                "registry_load_failure", "high", 0.6, text, "block",
                "The log ends before the registry was loaded",
                {"reason": "incomplete", "line": summary.line_count},
            ))  # fmt: skip
    if "test_failure" not in seen and not summary.tests_passed:
        text = (
            f"{summary.tests_failed} failed, {summary.tests_errors} error(s) "
            f"of {summary.tests_run} tests"
        )
        out.append(Finding(
            "test_failure", "high", 0.9, text, "block", "Tests failed",
            {"failures": summary.tests_failed, "errors": summary.tests_errors,
             "testsRun": summary.tests_run},
        ))  # fmt: skip
    return out


def risk(findings: Iterable[Finding], changed_modules_count: int) -> Risk:
    """Risk of the deployment, 0-100.

    - Each finding class counts once, at its strongest finding: severity points
      (critical 60, high 35, medium 12, low 3, info 0) x confidence, plus 2 points
      per further finding of that class (at most +8).
    - Changed modules add 2 points each (at most 20): bigger changes, more risk.
    - Level: ``high`` from 60 points or with any blocking finding, ``medium``
      from 25 points or with any ``warn`` finding, else ``low``.
    """
    strongest: dict[str, float] = {}
    extra: dict[str, int] = {}
    gates: set[str] = set()
    for finding in findings:
        points = SEVERITY_POINTS.get(finding.severity, 0) * finding.confidence
        if finding.kind in strongest:
            extra[finding.kind] = extra.get(finding.kind, 0) + 1
        strongest[finding.kind] = max(strongest.get(finding.kind, 0.0), points)
        gates.add(finding.gate_action)
    total = sum(p + 2 * min(extra.get(kind, 0), 4) for kind, p in strongest.items())
    total += min(20, 2 * max(0, changed_modules_count))
    score = min(100, round(total))
    level: Literal["low", "medium", "high"] = "low"
    if score >= 60 or "block" in gates:
        level = "high"
    elif score >= 25 or "warn" in gates:
        level = "medium"
    return Risk(level, score)


def verdict(
    summary: LogSummary, findings: Iterable[Finding], waived: bool = False
) -> SuccessVerdict:
    """Did the deployment's Odoo run succeed?

    - ``failed`` when a finding blocks or the summary is not a success (an ERROR,
      no ``Registry loaded``, failed tests); the reason names the first cause.
    - ``waived=True`` turns a failure into ``passed`` with ``waived`` set (never
      ``clean``); a waiver on a passing run changes nothing.
    - ``clean``: passed, no ``block``/``warn`` finding and no WARNING logged.
    - ``legacy``: the log shows no registry loading at all (not an ``-i``/``-u``
      run, or not Odoo's log format); the verdict then only rests on the error
      count and blocking findings, and is never ``clean``.
    """
    items = list(findings)
    blocking = [f for f in items if f.gate_action == "block"]
    warned = [f for f in items if f.gate_action == "warn"]
    legacy = not (summary.loading_started or summary.registry_loaded or summary.registry_failed)
    if legacy:
        failed = bool(blocking) or summary.error_count > 0
    else:
        failed = bool(blocking) or not summary.success
    if failed:
        reason = _failure_reason(summary, blocking, legacy)
        if waived:
            return SuccessVerdict("passed", "Passed (waived)", False, f"waived: {reason}",
                                  legacy, True)  # fmt: skip
        label = "Failed (legacy check)" if legacy else "Failed"
        return SuccessVerdict("failed", label, False, reason, legacy, False)
    if legacy:
        reason = "no registry loading in the log; no errors logged"
        return SuccessVerdict("passed", "Passed (legacy check)", False, reason, True, False)
    clean = not warned and not blocking and summary.warning_count == 0
    modules = len(summary.updated_modules)
    base = f"registry loaded, {modules} module{'s' if modules != 1 else ''} installed or updated"
    if summary.tests_run:
        base += f", {summary.tests_run} tests passed"
    if clean:
        return SuccessVerdict("passed", "Clean", True, base + ", no warnings", False, False)
    review = ", ".join(dict.fromkeys(f.kind for f in warned))
    detail = f"{summary.warning_count} warning{'s' if summary.warning_count != 1 else ''}"
    if review:
        detail += f" (to review: {review})"
    return SuccessVerdict("passed", "Passed with warnings", False, f"{base}; {detail}",
                          False, False)  # fmt: skip


def _failure_reason(summary: LogSummary, blocking: list[Finding], legacy: bool) -> str:
    if blocking:
        first = blocking[0]
        more = f" (+{len(blocking) - 1} more blocking)" if len(blocking) > 1 else ""
        return f"{first.kind}: {first.title}{more}"
    if summary.error_count and (legacy or summary.registry_loaded):
        return f"{summary.error_count} error(s) logged"
    if not summary.registry_loaded:
        return "the registry was not loaded"
    if not summary.tests_passed:
        return "tests failed"
    return f"{summary.error_count} error(s) logged"
