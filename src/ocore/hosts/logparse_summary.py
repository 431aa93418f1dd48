"""Incremental summary of an Odoo server log (``-i``/``-u … --stop-after-init`` runs).

Sections, in the order they first appear (one entry per name; a section spans its
first to last line, ``lineCount`` counts only its own lines, so ``tests`` can sit
inside ``module update`` when at_install tests run between modules):

- ``startup``: everything before the first database-bound line (version, config,
  addons paths, HTTP service);
- ``loading``: registry loading around the modules: ``init db``, ``loading N
  modules...``, ``updating modules list``, ``N modules loaded``, ``Modules loaded.``,
  ``Registry loaded``, registry failures;
- ``module update``: from ``Loading module X (i/N)`` (INFO: the module is installed
  or updated) to ``Module X loaded in …``, with the data files and warnings between;
- ``tests``: records of test loggers (``*.tests*``), post tests, test reports;
- ``serving``: lines after the registry is loaded (HTTP requests, crons);
- ``shutdown``: from ``Initiating shutdown`` / ``Stopping gracefully`` to the end.

Continuation lines belong to the section of their record.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ocore.hosts.logparse_model import (
    MODULE_TEST_FAILURES,
    TEST_RESULT,
    LogSummary,
    Section,
    WarningGroup,
    categorize,
    is_test_failure,
    is_test_logger,
)
from ocore.hosts.logparse_records import (
    LEVEL_RANK,
    MAX_LINE_LENGTH,
    LogRecord,
    RecordAssembler,
    normalize_message,
)

MAX_GROUPS = 500
"""Distinct warning groups tracked; further distinct messages fold into one group."""
MAX_KEPT_RECORDS = 5000
"""Notable records (WARNING and above) kept for findings; counts stay exact."""

_LOADING_MODULE = re.compile(r"Loading module (\S+) \((\d+)/(\d+)\)")
_LOADING_N = re.compile(r"loading (\d+) modules\.\.\.")
_MODULES_LOADED = re.compile(r"(\d+) modules loaded in ")
_VERSION = re.compile(r"Odoo version (\S+)")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")

_WARN = LEVEL_RANK["WARNING"]
_ERROR = LEVEL_RANK["ERROR"]


@dataclass(slots=True)
class _Group:
    category: str
    logger: str
    message: str
    first_line: int
    count: int = 0
    rank: int = 0


@dataclass(slots=True)
class _State:
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    errors: int = 0
    warnings: int = 0
    version: str | None = None
    total: int = 0
    updated: dict[str, None] = field(default_factory=dict)
    sections: dict[str, list[int]] = field(default_factory=dict)
    groups: dict[tuple[str, str], _Group] = field(default_factory=dict)
    records: int = 0
    loading_started: bool = False
    registry_loaded: bool = False
    registry_failed: bool = False
    current_module: str | None = None
    failed_module: str | None = None
    not_loaded: dict[str, None] = field(default_factory=dict)
    tests_run: int = 0
    tests_failed: int = 0
    tests_errors: int = 0
    tests_failed_seen: bool = False


class LogSummarizer:
    """Feed log text as it streams (``feed`` takes arbitrary chunks, ``feed_line``
    whole lines), then ask for ``summary()`` at any time; ``close()`` at the end
    flushes a last line without newline. Memory stays bounded: only notable
    records are kept (``keep="all"`` keeps every record, ``"none"`` none)."""

    def __init__(
        self,
        *,
        keep: Literal["notable", "all", "none"] = "notable",
        max_records: int = MAX_KEPT_RECORDS,
    ) -> None:
        self._asm = RecordAssembler()
        self._state = _State()
        self._keep = keep
        self._max_records = max_records
        self._kept: list[LogRecord] = []
        self._default = "startup"
        self._record_phase = "startup"
        self._buf = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._closed = False

    # --- input --------------------------------------------------------------------
    def feed(self, data: str | bytes) -> None:
        """A chunk of the stream: lines may be split anywhere, even inside a
        UTF-8 character; the part after the last newline waits for more."""
        text = self._decoder.decode(bytes(data)) if isinstance(data, bytes | bytearray) else data
        if not text:
            return
        parts = text.split("\n")
        parts[0] = self._buf + parts[0]
        self._buf = parts.pop()
        if len(self._buf) > MAX_LINE_LENGTH * 4:
            self._buf = self._buf[: MAX_LINE_LENGTH * 4]
        for line in parts:
            self.feed_line(line)

    def feed_lines(self, lines: Iterable[str | bytes]) -> None:
        for line in lines:
            self.feed_line(line)

    def feed_line(self, line: str | bytes) -> None:
        """One complete line (its line ending is optional)."""
        finished, started = self._asm.add(line)
        if finished is not None:
            self._finish(finished)
        if started is not None:
            self._record_phase = self._on_record(started)
            phase = self._record_phase
        elif self._asm.current is not None:
            phase = self._record_phase
        else:
            phase = self._default
        line_no = self._asm.line_no
        section = self._state.sections.get(phase)
        if section is None:
            self._state.sections[phase] = [line_no, line_no, 1]
        else:
            section[1] = line_no
            section[2] += 1

    def close(self) -> None:
        """End of the stream: the last partial line and pending record are flushed."""
        if self._closed:
            return
        tail = self._buf + self._decoder.decode(b"", final=True)
        self._buf = ""
        if tail:
            self.feed_line(tail)
        last = self._asm.flush()
        if last is not None:
            self._finish(last)
        self._closed = True

    # --- output -------------------------------------------------------------------
    @property
    def records(self) -> list[LogRecord]:
        """Kept records, the pending one included (as it stands now)."""
        pending = self._asm.snapshot()
        if pending is not None and self._wants(pending) and len(self._kept) < self._max_records:
            return [*self._kept, pending]
        return list(self._kept)

    def summary(self) -> LogSummary:
        s = self._state
        duration = 0
        if s.first_ts is not None and s.last_ts is not None:
            duration = max(0, int((s.last_ts - s.first_ts).total_seconds() * 1000))
        groups = sorted(
            s.groups.values(), key=lambda g: (-g.rank, -g.count, g.first_line, g.message)
        )
        registry_ok = s.registry_loaded and not s.registry_failed
        tests_ok = not s.tests_failed_seen and s.tests_failed + s.tests_errors == 0
        return LogSummary(
            duration_ms=duration,
            error_count=s.errors,
            odoo_version=s.version,
            sections=tuple(Section(n, a, b, c) for n, (a, b, c) in s.sections.items()),
            success=s.errors == 0 and registry_ok and tests_ok,
            total_modules=s.total,
            updated_modules=tuple(s.updated),
            warning_count=s.warnings,
            warning_groups=tuple(
                WarningGroup(
                    g.category, g.count, g.logger, g.message, _severity(g.rank), g.first_line
                )
                for g in groups
            ),
            line_count=self._asm.line_no,
            record_count=s.records,
            loading_started=s.loading_started,
            registry_loaded=s.registry_loaded,
            registry_failed=s.registry_failed,
            failed_module=s.failed_module,
            not_loaded_modules=tuple(s.not_loaded),
            tests_run=s.tests_run,
            tests_failed=s.tests_failed,
            tests_errors=s.tests_errors,
            tests_failed_seen=s.tests_failed_seen,
        )

    # --- internals ----------------------------------------------------------------
    def _wants(self, record: LogRecord) -> bool:
        if self._keep == "all":
            return True
        return self._keep == "notable" and record.rank >= _WARN

    def _finish(self, record: LogRecord) -> None:
        if self._wants(record) and len(self._kept) < self._max_records:
            self._kept.append(record)

    def _on_record(self, rec: LogRecord) -> str:
        """Counts and facts of a new record; returns its section."""
        s = self._state
        s.records += 1
        if s.first_ts is None:
            s.first_ts = rec.timestamp
        if s.last_ts is None or rec.timestamp > s.last_ts:
            s.last_ts = rec.timestamp
        rank = rec.rank
        if rank >= _WARN:
            if rank >= _ERROR:
                s.errors += 1
            elif rec.level == "WARNING":
                s.warnings += 1
            self._group(rec, rank)
        phase = self._phase(rec, rank)
        if phase is None:
            if self._default == "startup" and rec.dbname is not None:
                self._default = "loading"
                s.loading_started = True
            phase = self._default
        return phase

    def _phase(self, rec: LogRecord, rank: int) -> str | None:
        """The section a record names explicitly, updating the default section."""
        s = self._state
        logger, msg = rec.logger, rec.message
        if logger == "odoo.modules.loading":
            if msg.startswith("Loading module "):
                m = _LOADING_MODULE.match(msg)
                if m is not None:
                    s.total = max(s.total, int(m[3]))
                    s.current_module = m[1]
                    if rank >= LEVEL_RANK["INFO"]:
                        s.updated.setdefault(m[1], None)
                        return self._set_default("module update")
                return None
            if msg.startswith("Module ") and " loaded in " in msg:
                phase = self._default
                s.current_module = None
                self._set_default("loading")
                return phase
            if (m := _MODULES_LOADED.match(msg)) or (m := _LOADING_N.match(msg)):
                s.total = max(s.total, int(m[1]))
                return self._set_default("loading")
            if msg.startswith("Modules loaded"):
                s.registry_loaded = True
                return self._set_default("loading")
            if msg.startswith("At least one test failed") or MODULE_TEST_FAILURES.match(msg):
                s.tests_failed_seen = True
                return "tests"
            if msg.startswith("Some modules are not loaded"):
                for quoted in _QUOTED.findall(msg):
                    s.not_loaded.setdefault(quoted[0] or quoted[1], None)
                return self._set_default("loading")
            if msg in ("init db", "updating modules list"):
                return self._set_default("loading")
            return None
        if logger == "odoo.modules.registry":
            if msg.startswith("Registry loaded in"):
                s.registry_loaded = True
                self._set_default("serving")
                return "loading"
            if msg.startswith("Failed to load registry"):
                self._registry_failed()
                return "loading"
            return None
        if logger == "odoo.service.server":
            if msg.startswith("Failed to initialize database"):
                self._registry_failed()
                return "loading"
            if msg.startswith(("Initiating shutdown", "Stopping gracefully", "Hit CTRL-C")):
                return self._set_default("shutdown")
            if "post tests" in msg or "post-tests" in msg:
                return "tests"
            return None
        if logger == "odoo" and msg.startswith("Odoo version"):
            m = _VERSION.match(msg)
            if m is not None and s.version is None:
                s.version = m[1]
            return None
        if is_test_logger(logger) or "when loading database" in msg:
            m = TEST_RESULT.search(msg)
            if m is not None:
                s.tests_failed += int(m[1])
                s.tests_errors += int(m[2])
                s.tests_run += int(m[3])
            if is_test_failure(rec):
                s.tests_failed_seen = True
            return "tests"
        return None

    def _set_default(self, phase: str) -> str:
        if self._default != "shutdown":
            self._default = phase
        if phase in ("loading", "module update"):
            self._state.loading_started = True
        return phase

    def _registry_failed(self) -> None:
        s = self._state
        s.registry_failed = True
        s.loading_started = True
        if s.failed_module is None:
            s.failed_module = s.current_module

    def _group(self, rec: LogRecord, rank: int) -> None:
        groups = self._state.groups
        key = (rec.logger, normalize_message(rec.message))
        group = groups.get(key)
        if group is None:
            if len(groups) >= MAX_GROUPS:
                key = ("*", "(other distinct messages)")
                group = groups.get(key)
            if group is None:
                group = _Group(categorize(key[0], rec.message), key[0], key[1], rec.line)
                groups[key] = group
        group.count += 1
        group.rank = max(group.rank, rank)


def _severity(rank: int) -> str:
    if rank >= LEVEL_RANK["CRITICAL"]:
        return "critical"
    return "error" if rank >= _ERROR else "warning"


def summarize(text: str | bytes) -> LogSummary:
    """Summary of a whole log at once."""
    summarizer = LogSummarizer(keep="none")
    summarizer.feed(text)
    summarizer.close()
    return summarizer.summary()
