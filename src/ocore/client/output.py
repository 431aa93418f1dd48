"""Output for people (rich tables) and for scripts (``--json``: the API's objects as-is)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

Column = tuple[str, str | Callable[[dict[str, Any]], Any]]
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?$")


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Not a terminal (CI, a pipe): wide enough that UUIDs are not wrapped in logs.
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, width=width, highlight=False)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    text = str(value)
    match = _TIMESTAMP.match(text)
    return f"{match.group(1)} {match.group(2)}" if match else text


class Output:
    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self.out = _console(stderr=False)
        self.err = _console(stderr=True)

    def print_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def table(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[Column], *, raw: Any = None
    ) -> None:
        """Rows as a table; with --json the API's answer (``raw``, default the rows)."""
        if self.json:
            self.print_json(rows if raw is None else raw)
            return
        if not rows:
            self.err.print("(none)")
            return
        table = Table(*(header for header, _ in columns), header_style="bold")
        for row in rows:
            table.add_row(*(Text(cell(_value(row, getter))) for _, getter in columns))
        self.out.print(table)

    def record(self, data: dict[str, Any], fields: Sequence[Column] | None = None) -> None:
        """One object as field/value lines; with --json the whole object."""
        if self.json:
            self.print_json(data)
            return
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        pairs = [(h, _value(data, g)) for h, g in fields] if fields else list(data.items())
        for header, value in pairs:
            table.add_row(header, Text(cell(value)))
        self.out.print(table)

    def done(self, message: str, data: Any = None) -> None:
        """An action's result: a sentence for people, the API's answer for scripts."""
        if self.json:
            self.print_json(data if data is not None else {"message": message})
        else:
            self.out.print(message, markup=False)

    def note(self, message: str) -> None:
        """Progress and hints: stderr, so --json stdout stays parseable."""
        self.err.print(message, markup=False)


def _value(row: dict[str, Any], getter: str | Callable[[dict[str, Any]], Any]) -> Any:
    return getter(row) if callable(getter) else row.get(getter)
