"""Odoo server logs → log summary, findings, risk and success verdict of a deployment.

Typical use while a build streams its ``odoo-bin -u … --stop-after-init`` output::

    summarizer = LogSummarizer()
    for chunk in stream:
        summarizer.feed(chunk)          # any chunking, str or bytes
    summarizer.close()
    summary = summarizer.summary()      # summary.to_dict(): GET …/logs/summary
    found = findings(summary, summarizer.records)
    risk(found, changed_modules_count=3)
    verdict(summary, found, waived=False)

The parts live in ``logparse_records`` (lines and records, normalization,
redaction), ``logparse_model`` (result types, record categories),
``logparse_summary`` (sections, groups, the summarizer) and ``logparse_findings``
(finding classes, risk and verdict rules).
"""

from __future__ import annotations

from ocore.hosts.logparse_findings import (
    SEVERITY_POINTS,
    classify,
    findings,
    risk,
    verdict,
)
from ocore.hosts.logparse_model import (
    Finding,
    GateAction,
    LogSummary,
    Risk,
    Section,
    Severity,
    SuccessVerdict,
    WarningGroup,
    categorize,
)
from ocore.hosts.logparse_records import (
    MAX_LINE_LENGTH,
    MAX_MESSAGE_LINES,
    LogRecord,
    RecordAssembler,
    clean_line,
    exception_line,
    excerpt,
    iter_records,
    normalize_message,
    parse_line,
    parse_log,
    redact,
)
from ocore.hosts.logparse_summary import LogSummarizer, summarize

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_MESSAGE_LINES",
    "SEVERITY_POINTS",
    "Finding",
    "GateAction",
    "LogRecord",
    "LogSummarizer",
    "LogSummary",
    "RecordAssembler",
    "Risk",
    "Section",
    "Severity",
    "SuccessVerdict",
    "WarningGroup",
    "analyze",
    "categorize",
    "classify",
    "clean_line",
    "exception_line",
    "excerpt",
    "findings",
    "iter_records",
    "normalize_message",
    "parse_line",
    "parse_log",
    "redact",
    "risk",
    "summarize",
    "verdict",
]


def analyze(
    text: str | bytes, changed_modules_count: int = 0, waived: bool = False
) -> tuple[LogSummary, list[Finding], Risk, SuccessVerdict]:
    """Everything about a whole log at once."""
    summarizer = LogSummarizer()
    summarizer.feed(text)
    summarizer.close()
    summary = summarizer.summary()
    found = findings(summary, summarizer.records)
    return summary, found, risk(found, changed_modules_count), verdict(summary, found, waived)
