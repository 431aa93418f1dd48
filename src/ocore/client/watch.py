"""Watching a deployment: live steps and log lines, then a summary and an exit code.

On a terminal the steps get a live progress display with log lines scrolling above
it; elsewhere (CI, pipes) the output is plain lines in the download format::

    ==> update modules
    <log lines>
    <== update modules: succeeded (2.1s)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from ocore.client.errors import EXIT_DEPLOY_FAILED, ClientError
from ocore.client.http import ApiClient
from ocore.client.output import Output
from ocore.client.sse import follow

DONE = ("succeeded", "failed", "cancelled")
MARK = {"succeeded": "✓", "failed": "✗", "cancelled": "-"}


def _duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return ""
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{int(ms)}ms"


class Display(Protocol):
    def started(self, step: dict[str, Any]) -> None: ...
    def line(self, text: str) -> None: ...
    def finished(self, step: dict[str, Any]) -> None: ...
    def notice(self, text: str) -> None: ...


class PlainDisplay:
    """One line per event, flushed at once: what a CI log wants."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def started(self, step: dict[str, Any]) -> None:
        self._write(f"==> {step.get('name')}")

    def line(self, text: str) -> None:
        self._write(text)

    def finished(self, step: dict[str, Any]) -> None:
        took = _duration(step.get("durationMs"))
        self._write(
            f"<== {step.get('name')}: {step.get('status')}" + (f" ({took})" if took else "")
        )

    def notice(self, text: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(f"ocore: {text}\n")
        sys.stderr.flush()


class RichDisplay:
    """A spinner per running step, ticks for finished ones, log lines printed above."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def started(self, step: dict[str, Any]) -> None:
        name = escape(str(step.get("name")))
        self.tasks[str(step.get("id"))] = self.progress.add_task(name, total=1)

    def line(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False, style="dim")

    def finished(self, step: dict[str, Any]) -> None:
        key = str(step.get("id"))
        if key not in self.tasks:
            self.started(step)
        status = str(step.get("status"))
        colour = "green" if status == "succeeded" else "red"
        took = _duration(step.get("durationMs"))
        label = (
            f"[{colour}]{MARK.get(status, '?')}[/] {escape(str(step.get('name')))} {status} {took}"
        )
        self.progress.update(self.tasks[key], description=label, completed=1)
        self.progress.stop_task(self.tasks[key])

    def notice(self, text: str) -> None:
        self.progress.console.print(text, style="yellow", markup=False, highlight=False)


@contextmanager
def display(out: Output) -> Iterator[Display]:
    # --json keeps stdout for the final object: the live view goes to stderr.
    stream = sys.stderr if out.json else sys.stdout
    if stream.isatty():
        console = Console(file=stream)
        columns = (SpinnerColumn(finished_text=""), TextColumn("{task.description}"))
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as bar:
            yield RichDisplay(bar)
    else:
        yield PlainDisplay(stream)


def stream_build(
    api: ApiClient, project_id: str, deployment_id: str, out: Output
) -> dict[str, Any]:
    """Print the build as it happens (or its replay); returns the ``complete`` data."""
    path = f"/projects/{project_id}/deployments/{deployment_id}/logs"
    seen: dict[str, str] = {}
    with display(out) as view:
        for event in follow(api, path, notify=view.notice):
            data = event.json()
            if event.event == "step" and isinstance(data, dict):
                key, status = str(data.get("id")), str(data.get("status"))
                if key not in seen:
                    view.started(data)
                # A finished build replays each step once, with its whole output.
                for text in str(data.get("output") or "").splitlines():
                    view.line(text)
                if status in DONE and seen.get(key) not in DONE:
                    view.finished(data)
                seen[key] = status
            elif event.event == "log" and isinstance(data, dict):
                view.line(str(data.get("line", "")))
            elif event.event == "complete":
                return data if isinstance(data, dict) else {}
    raise ClientError("the log stream ended without a result")  # pragma: no cover


def failing_gate(deployment: dict[str, Any]) -> dict[str, Any] | None:
    failed = [e for e in deployment.get("evidence") or [] if e.get("status") == "failed"]
    required = [e for e in failed if e.get("required")]
    chosen = required or failed
    return chosen[0] if chosen else None


def gate_detail(gate: dict[str, Any], deployment: dict[str, Any]) -> str:
    validation = gate.get("validation") or {}
    reasons = (validation.get("failureCard") or {}).get("reasons") or []
    return str(gate.get("summary") or (reasons[0] if reasons else deployment.get("errorMessage")))


def summarize(api: ApiClient, deployment: dict[str, Any], out: Output) -> int:
    """The deployment's outcome for people (or its object for --json); the exit code."""
    status = str(deployment.get("status"))
    path = f"/projects/{deployment['projectId']}/deployments/{deployment['id']}/logs/summary"
    try:
        summary: dict[str, Any] = api.get(path) or {}
    except ClientError as exc:
        out.note(f"(no log summary: {exc.message})")
        summary = {}
    code = 0 if status == "succeeded" else EXIT_DEPLOY_FAILED
    gate = failing_gate(deployment) if code else None
    if out.json:
        out.print_json(deployment)
    else:
        _print_summary(out, deployment, summary)
    if code:
        if gate is not None:
            message = f"Gate failed: {gate.get('name')} — {gate_detail(gate, deployment)}"
        else:
            message = f"Deployment {status}: {deployment.get('errorMessage') or 'no reason given'}"
        raise ClientError(message, code)
    return 0


def _print_summary(out: Output, deployment: dict[str, Any], summary: dict[str, Any]) -> None:
    status = str(deployment.get("status"))
    colour = "green" if status == "succeeded" else "red"
    sha = str(deployment.get("commitSha") or "")[:12] or "-"
    took = _duration(deployment.get("durationMs"))
    console = out.out
    console.print()
    branch = escape(str(deployment.get("branch") or "-"))
    console.print(
        f"Deployment {deployment.get('id')}: [bold {colour}]{escape(status)}[/]"
        + (f" in {took}" if took else "")
        + f" (commit {escape(sha)} on {branch})"
    )
    modules = summary.get("updatedModules") or []
    console.print(f"Modules updated: {', '.join(modules) if modules else 'none'}", markup=False)
    console.print(
        f"Warnings: {summary.get('warningCount', 0)}  Errors: {summary.get('errorCount', 0)}"
    )
    for group in (summary.get("warningGroups") or [])[:10]:
        console.print(
            f"  {group.get('severity')} x{group.get('count')} {group.get('logger')}: "
            f"{group.get('message')}",
            markup=False,
        )
    verdict = deployment.get("successVerdict") or {}
    if verdict:
        console.print(f"Verdict: {verdict.get('label')} — {verdict.get('reason')}", markup=False)
    for gate in deployment.get("evidence") or []:
        if gate.get("status") == "failed" and not gate.get("required"):
            console.print(f"Warning: gate {gate.get('name')} — {gate.get('summary')}", markup=False)
    for finding in deployment.get("findings") or []:
        console.print(
            f"Finding: {finding.get('class')} ({finding.get('severity')}): "
            f"{str(finding.get('evidenceExcerpt') or '').strip()[:200]}",
            markup=False,
        )
    if status != "succeeded" and deployment.get("errorMessage"):
        console.print(f"Error: {deployment.get('errorMessage')}", markup=False)


def watch(api: ApiClient, deployment: dict[str, Any], out: Output) -> int:
    """Follow a build to its end, print the summary; 0, or raises with exit code 3."""
    project_id, deployment_id = str(deployment["projectId"]), str(deployment["id"])
    stream_build(api, project_id, deployment_id, out)
    path = f"/projects/{project_id}/deployments/{deployment_id}"
    final: dict[str, Any] = api.get(path)
    for _ in range(60):  # the row is written before `complete`; this only covers a retry
        if final.get("status") in DONE:
            break
        time.sleep(0.5)
        final = api.get(path)
    return summarize(api, final, out)
