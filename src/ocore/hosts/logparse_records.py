"""Odoo server log lines: parsing, continuation lines, normalization and redaction.

Odoo (16.0 - 18.0, ``odoo/netsvc.py``) logs with
``%(asctime)s %(pid)s %(levelname)s %(dbname)s %(name)s: %(message)s %(perf_info)s``:
UTC timestamps with milliseconds, ``?`` as dbname outside a database, always a
trailing space (``perf_info`` is empty except on ``werkzeug`` lines, where it is
``<queries> <query time> <remaining time>`` or ``- - -``, with a 4th field in
replica mode). Multi-line messages (tracebacks, the access-rules hint, python
warnings) continue on unprefixed lines. Colored terminals wrap the level name and
perf numbers in ANSI escapes; they are stripped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_LINE_LENGTH = 4096
"""Longer lines are cut to this many characters (plus a marker)."""
MAX_MESSAGE_LINES = 400
"""Continuation lines kept per record; further ones are counted, not kept."""

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}

_LINE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}) (\d+) ([A-Z_]+) (\S+) (\S+?):(?: (.*))?$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# werkzeug: `<ip> - - [<date>] "<request line>" <status> <size>` then perf_info
_WERKZEUG_PERF = re.compile(r'(.*" \d{3} \S+) (\S+ \S+ \S+(?: \S+)?)$')
_PERF = re.compile(r" ((?:\d+|-) (?:\d+\.\d+|-) (?:\d+\.\d+|-))$")
_TRUNCATED = " …[truncated]"


@dataclass(slots=True)
class LogRecord:
    """One log record: a prefixed line plus the continuation lines that follow it.

    ``line``/``end_line`` are 1-based line numbers in the fed stream (0 when the
    record came from :func:`parse_line` alone). ``dbname`` is ``None`` for ``?``.
    """

    timestamp: datetime
    pid: int
    level: str
    dbname: str | None
    logger: str
    message: str
    perf_info: str = ""
    line: int = 0
    end_line: int = 0

    @property
    def first_line(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def has_traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.message

    @property
    def rank(self) -> int:
        return LEVEL_RANK.get(self.level, 20)


def clean_line(line: str | bytes) -> str:
    """Decode, drop the line ending and ANSI escapes, cut very long lines."""
    if isinstance(line, bytes | bytearray):
        line = bytes(line[: MAX_LINE_LENGTH * 4]).decode("utf-8", "replace")
    line = line.rstrip("\r\n")
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    if len(line) > MAX_LINE_LENGTH:
        line = line[:MAX_LINE_LENGTH] + _TRUNCATED
    return line


def parse_line(line: str | bytes, line_no: int = 0) -> LogRecord | None:
    """The record a prefixed Odoo log line starts, or ``None`` for any other line
    (a continuation line, blank line, garbage). Never raises."""
    text = clean_line(line)
    if len(text) < 30 or not text[0].isdigit():
        return None
    m = _LINE.match(text)
    if m is None:
        return None
    g = m.groups()
    try:
        ts = datetime(
            int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]),
            int(g[6]) * 1000, tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None
    level = _LEVEL_ALIASES.get(g[8], g[8])
    logger = g[10]
    message = (g[11] or "").rstrip()
    perf = ""
    if logger == "werkzeug":
        wm = _WERKZEUG_PERF.match(message)
        if wm is not None:
            message, perf = wm.group(1), wm.group(2)
        elif (pm := _PERF.search(message)) is not None:
            perf = pm.group(1)
            message = message[: pm.start()].rstrip()
    db = g[9]
    return LogRecord(
        timestamp=ts, pid=int(g[7]), level=level, dbname=None if db == "?" else db,
        logger=logger, message=message, perf_info=perf, line=line_no, end_line=line_no,
    )  # fmt: skip


class RecordAssembler:
    """Turns a stream of lines into records: continuation lines join the record
    before them. ``add`` returns the record the line *finished*, if any."""

    def __init__(self) -> None:
        self.current: LogRecord | None = None
        self._extra: list[str] = []
        self._dropped = 0
        self.line_no = 0
        self.orphans = 0
        """Lines before the first record (not attached to anything)."""

    def add(self, raw: str | bytes) -> tuple[LogRecord | None, LogRecord | None]:
        """Feed one line; returns ``(finished, started)`` records."""
        self.line_no += 1
        record = parse_line(raw, self.line_no)
        if record is None:
            if self.current is None:
                self.orphans += 1
            elif len(self._extra) < MAX_MESSAGE_LINES:
                self._extra.append(clean_line(raw))
                self.current.end_line = self.line_no
            else:
                self._dropped += 1
                self.current.end_line = self.line_no
            return None, None
        finished = self.flush()
        self.current = record
        return finished, record

    def flush(self) -> LogRecord | None:
        """Finish the pending record (at the end of the stream)."""
        record = self.current
        if record is None:
            return None
        if self._extra:
            lines = [record.message, *self._extra]
            lines[-1] = lines[-1].rstrip()
            if self._dropped:
                lines.append(f"…[{self._dropped} more lines]")
            record.message = "\n".join(lines)
        self.current = None
        self._extra = []
        self._dropped = 0
        return record

    def snapshot(self) -> LogRecord | None:
        """The pending record as it would be finished now (not consumed)."""
        if self.current is None:
            return None
        rec = self.current
        if not self._extra:
            return rec
        message = "\n".join([rec.message, *self._extra]).rstrip()
        return LogRecord(
            rec.timestamp, rec.pid, rec.level, rec.dbname, rec.logger, message,
            rec.perf_info, rec.line, rec.end_line,
        )  # fmt: skip


def iter_records(lines: Iterable[str | bytes]) -> Iterator[LogRecord]:
    """Records of a whole log, continuation lines attached."""
    assembler = RecordAssembler()
    for raw in lines:
        finished, _ = assembler.add(raw)
        if finished is not None:
            yield finished
    last = assembler.flush()
    if last is not None:
        yield last


def parse_log(text: str | bytes) -> list[LogRecord]:
    """All records of a log given as one string or bytes."""
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    lines = data.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline ending the last line does not start another one
    return list(iter_records(lines))


# --- normalization (grouping repeated warnings) ---------------------------------

_NORMALIZERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\w+://\S+"), "<url>"),
    (re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`"), "<str>"),
    (re.compile(r"\[[^\[\]]*\]"), "<list>"),
    (re.compile(r"(?<![\w.])(?:[A-Za-z]:)?(?:\.{0,2}/)?(?:[\w.\-]+/)+[\w.\-]+"), "<path>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<id>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b"), "<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w<])\d+(?:[.,]\d+)*(?![\w>])"), "<n>"),
    (
        re.compile(
            r"(?i)\b(modules?|models?|fields?|tables?|views?|records?|users?|database)"
            r" (?=[a-z]\w*[._]\w)[\w.]+"
        ),
        r"\1 <name>",
    ),
]


def normalize_message(message: str, limit: int = 300) -> str:
    """The first line of ``message`` with its variable parts replaced, so that
    repeats of one warning collapse: URLs, quoted names, bracketed lists, paths,
    ids, IPs, numbers and technical names after words like ``module``/``model``."""
    text = message.split("\n", 1)[0][:1000].strip()
    for pattern, repl in _NORMALIZERS:
        text = pattern.sub(repl, text)
    return text[:limit]


# --- redaction and excerpts -------------------------------------------------------

_SENSITIVE_NAME = (
    r"[\w.-]*(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|private[_-]?key|credential|session_id|csrf)[\w.-]*"
)
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"(?i)({_SENSITIVE_NAME}['\"]?\s*[=:]\s*['\"]?)([^\s'\",;&)}}\]]+)"), r"\1***"),
    (
        re.compile(r"(?i)\b(authorization\s*[=:]\s*['\"]?(?:bearer|basic)?\s*)([^\s'\",;]+)"),
        r"\1***",
    ),
    (re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{8,})"), r"\1***"),
    (re.compile(r"(\w+://[^/\s:@]+:)([^@\s/]+)(@)"), r"\1***\3"),
    (re.compile(r"\b(?:sk|pk|rk|whsec)_(?:live|test)_[A-Za-z0-9]+"), "***"),
]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def redact(text: str) -> str:
    """Mask values that look like secrets: ``password=...``, ``"token": "..."``,
    ``Authorization: Bearer ...``, credentials in URLs, Stripe-style keys."""
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


def excerpt(record: LogRecord, max_lines: int = 10, max_chars: int = 1200) -> str:
    """A short, redacted view of a record: its header line, then for a traceback
    its innermost frame and the exception, else the first and last lines."""
    lines = record.message.split("\n")
    head = f"{record.line}: {record.level} {record.dbname or '?'} {record.logger}: {lines[0]}"
    body = lines[1:]
    if len(body) > max_lines - 1:
        exc = _exception_index(lines)
        if exc is not None:
            tail_end = min(len(lines), exc + max(1, max_lines - 6))
            if exc > 4:  # first line, skipped frames, innermost frame, exception
                picked = [lines[exc - 2], lines[exc - 1], *lines[exc:tail_end]]
                body = [lines[1], f"… ({exc - 4} lines)", *picked]
            else:
                body = lines[1:tail_end]
            if tail_end < len(lines):
                body.append(f"… ({len(lines) - tail_end} more lines)")
        else:
            keep_tail = max_lines - 4
            body = [*body[:2], f"… ({len(body) - 2 - keep_tail} lines)", *body[-keep_tail:]]
    out = [head, *body]
    text = "\n".join(line if len(line) <= 240 else line[:240] + "…" for line in out)
    text = redact(_CONTROL.sub("\ufffd", text))
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _exception_index(lines: list[str]) -> int | None:
    """Index of the ``Exception: message`` line closing the last traceback."""
    starts = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    if not starts:
        return None
    for i in range(starts[-1] + 1, len(lines)):
        if lines[i] and not lines[i].startswith((" ", "\t")):
            return i
    return None


def exception_line(record: LogRecord) -> str | None:
    """The ``Exception: message`` line closing a traceback (the last one of a
    chain), if the record has one; redacted."""
    lines = record.message.split("\n")
    index = _exception_index(lines)
    return None if index is None else redact(lines[index].strip())[:300]
