"""Odoo log parsing: summaries, findings, risk and verdicts.

Against real logs the odoo-bin stand-in writes (``-i``/``-u … --stop-after-init``
on a real PostgreSQL database, generated once per module) and hand-written samples
of real Odoo shapes in ``tests/hosts/logs/``.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy.engine import make_url

from ocore.hosts.logparse import (
    MAX_LINE_LENGTH,
    Finding,
    GateAction,
    LogSummarizer,
    LogSummary,
    Severity,
    analyze,
    excerpt,
    findings,
    normalize_message,
    parse_line,
    parse_log,
    redact,
    risk,
    summarize,
    verdict,
)
from tests.conftest import ADMIN_DATABASE_URL
from tests.fixtures.odoo_standin.harness import OdooCheckout, assert_odoo_log_format, free_port

LOGS = Path(__file__).resolve().parent / "logs"
SEED_SUMMARY_KEYS = {
    "durationMs", "errorCount", "odooVersion", "sections", "success", "totalModules",
    "updatedModules", "warningCount", "warningGroups",
}  # fmt: skip
SCENARIOS: list[tuple[str, tuple[str, ...]]] = [
    ("install", ("-i", "sale_custom,stock_custom")),
    ("update", ("-u", "sale_custom,stock_custom", "--test-enable")),
    ("warnings", ("-i", "warn_a,warn_b,warn_c,ghost_module")),
    ("fail_load", ("-i", "broken_custom")),
    ("fail_test", ("-i", "flaky_custom", "--test-enable")),
]


@dataclass(frozen=True)
class Run:
    returncode: int
    text: str


def _psql(sql: str) -> None:
    url = make_url(ADMIN_DATABASE_URL)
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    cmd = ["psql", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    cmd += ["-U", url.username or "", "-d", "postgres", "-AtXqc", sql]
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Real stand-in logs of a clean install, a tested update, a warning-laden
    install, a failing module load and failing tests, in one database."""
    url = make_url(ADMIN_DATABASE_URL)
    root = tmp_path_factory.mktemp("logparse") / "odoo-17.0"
    odoo = OdooCheckout(root, "17.0", url.username or "", url.host or "127.0.0.1", url.port or 5432)
    odoo.base_options.update(db_password=url.password, http_port=free_port())
    odoo.addon("sale_custom", standin_tests=2)
    odoo.addon("stock_custom", depends=["sale_custom"])
    for name in ("warn_a", "warn_b", "warn_c"):
        odoo.addon(name, standin_warn=True)
    odoo.addon("broken_custom", standin_fail="load")
    odoo.addon("flaky_custom", standin_fail="test", standin_tests=3)
    db = f"logparse_{uuid.uuid4().hex[:10]}"
    runs: dict[str, Run] = {}
    try:
        for name, args in SCENARIOS:
            logfile = root / f"{name}.log"
            odoo.write_conf(logfile=logfile)
            proc = odoo.run("-d", db, *args, "--stop-after-init", timeout=120)
            runs[name] = Run(proc.returncode, logfile.read_text())
        yield runs
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def sample(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


def streamed(
    data: bytes, seed: int, keep: Literal["notable", "all", "none"] = "notable"
) -> LogSummarizer:
    """Feed ``data`` in random chunks (cutting lines and UTF-8 characters)."""
    rng = random.Random(seed)
    summarizer = LogSummarizer(keep=keep)
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 2, 3, 7, 64, 500, 4096])
        summarizer.feed(data[pos : pos + size])
        pos += size
    summarizer.close()
    return summarizer


def kinds(found: list[Finding]) -> list[str]:
    return [f.kind for f in found]


# --- lines and records ------------------------------------------------------------


def test_parse_line_reads_every_field() -> None:
    line = (
        "2025-03-04 09:12:05,590 4242 WARNING prod odoo.addons.base.models.ir_model: "
        "Two fields (a, b) of res.partner() have the same label: Name. [Modules: x and y] \n"
    )
    record = parse_line(line, 7)
    assert record is not None
    assert record.timestamp.isoformat() == "2025-03-04T09:12:05.590000+00:00"
    assert (record.pid, record.level, record.dbname) == (4242, "WARNING", "prod")
    assert record.logger == "odoo.addons.base.models.ir_model"
    assert record.message.startswith("Two fields (a, b)")
    assert record.message.endswith("[Modules: x and y]")  # Odoo's trailing space dropped
    assert (record.line, record.perf_info) == (7, "")


def test_parse_line_werkzeug_perf_info_ansi_and_unknown_db() -> None:
    colored = (
        "2024-06-02 14:20:01,120 31 \x1b[1;32m\x1b[1;49mINFO\x1b[0m ? werkzeug: 10.0.0.5 - - "
        '[02/Jun/2024 14:20:01] "GET /web/health HTTP/1.1" 200 - 3 0.002 0.011'
    )
    record = parse_line(colored)
    assert record is not None
    assert (record.level, record.dbname, record.perf_info) == ("INFO", None, "3 0.002 0.011")
    assert record.message.endswith('"GET /web/health HTTP/1.1" 200 -')
    no_queries = parse_line(
        "2024-06-02 14:20:01,410 31 INFO prod werkzeug: 10.0.0.5 - - [02/Jun/2024 14:20:01] "
        '"GET /web/static/img/favicon.ico HTTP/1.1" 304 - - - - '
    )
    assert no_queries is not None
    assert no_queries.perf_info == "- - -"
    assert no_queries.message.endswith('HTTP/1.1" 304 -')


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3/dist-packages/odoo/http.py", line 2190, in __call__',
        "2024-13-45 99:99:99,000 1 INFO db odoo: impossible date",
        "2024-05-13 08:01:12,345 INFO ? odoo: no pid",
        "2024-05-13 08:01:12 28 INFO ? odoo: no milliseconds",
        "\x00\x01\x02 binary",
        b"\xff\xfe\x00garbage\x80",
    ],
)
def test_parse_line_rejects_what_is_not_a_record(line: str | bytes) -> None:
    assert parse_line(line) is None


def test_continuation_lines_attach_to_their_record() -> None:
    records = parse_log(sample("odoo17_update_warnings.log"))
    acl = next(r for r in records if "no access rules" in r.message)
    assert (acl.line, acl.end_line) == (32, 35)
    assert acl.message.count("\n") == 3
    assert acl.message.splitlines()[1].startswith("id,name,model_id:id")
    assert not acl.message.endswith(" ")
    py_warning = next(r for r in records if r.logger == "py.warnings")
    assert py_warning.message.splitlines()[-1] == "    warnings.warn("
    assert all(r.line <= r.end_line for r in records)


# --- summaries of real stand-in runs ---------------------------------------------


def test_clean_update_summary(standin: dict[str, Run]) -> None:
    run = standin["update"]
    assert run.returncode == 0
    assert_odoo_log_format(run.text)
    summary = summarize(run.text)
    assert summary.updated_modules == ("sale_custom", "stock_custom")
    assert summary.total_modules == 8  # base, the 2 custom modules, web & auto-installed ones
    assert summary.odoo_version == "17.0"
    assert (summary.error_count, summary.warning_count, summary.warning_groups) == (0, 0, ())
    assert summary.success
    assert (summary.tests_run, summary.tests_failed, summary.tests_errors) == (5, 0, 0)
    assert summary.duration_ms >= 0
    names = [s.name for s in summary.sections]
    assert names == ["startup", "loading", "module update", "tests", "shutdown"]
    lines = run.text.splitlines()
    assert sum(s.line_count for s in summary.sections) == len(lines) == summary.line_count
    first = {s.name: s for s in summary.sections}
    assert first["startup"].start_line == 1
    assert first["shutdown"].end_line == len(lines)
    assert "Initiating shutdown" in lines[first["shutdown"].start_line - 1]
    assert "Loading module sale_custom" in lines[first["module update"].start_line - 1]
    assert "Starting TestStandin" in lines[first["tests"].start_line - 1]
    for section in summary.sections:
        assert section.start_line <= section.end_line
        assert section.line_count <= section.end_line - section.start_line + 1

    payload = summary.to_dict()
    assert set(payload) == SEED_SUMMARY_KEYS
    assert payload["updatedModules"] == ["sale_custom", "stock_custom"]
    assert set(payload["sections"][0]) == {"endLine", "lineCount", "name", "startLine"}

    found = findings(summary, parse_log(run.text))
    assert found == []
    assert risk(found, changed_modules_count=2).to_dict() == {"level": "low", "score": 4}
    result = verdict(summary, found)
    assert (result.status, result.label, result.clean, result.legacy) == (
        "passed", "Clean", True, False,
    )  # fmt: skip
    assert "5 tests passed" in result.reason


def test_fresh_install_counts_base_and_auto_installed_modules(standin: dict[str, Run]) -> None:
    summary = summarize(standin["install"].text)
    assert summary.updated_modules[:2] == ("base", "sale_custom")
    assert "stock_custom" in summary.updated_modules
    assert summary.total_modules == len(summary.updated_modules) == 8
    assert summary.success
    assert [s.name for s in summary.sections] == ["startup", "loading", "module update", "shutdown"]


def test_warnings_are_grouped_with_counts(standin: dict[str, Run]) -> None:
    run = standin["warnings"]
    assert run.returncode == 0
    summary, found, level, result = analyze(run.text, changed_modules_count=3)
    assert summary.success
    assert summary.updated_modules == ("warn_a", "warn_b", "warn_c")
    assert summary.warning_count == 4
    groups = {g.category: g for g in summary.warning_groups}
    acl = groups["access_rules"]
    assert (acl.count, acl.severity, acl.logger) == (3, "warning", "odoo.modules.loading")
    assert acl.message == (
        "The models <list> have no access rules in module <name>, consider adding some, like:"
    )
    assert groups["registry"].message == "invalid module names, ignored: ghost_module"
    assert summary.warning_groups[0] is acl  # most frequent first
    assert sum(g.count for g in summary.warning_groups) == summary.warning_count

    assert kinds(found) == ["missing_access_rules"] * 3 + ["module_not_loaded"]
    assert {f.metadata["module"] for f in found[:3]} == {"warn_a", "warn_b", "warn_c"}
    assert found[0].metadata["models"] == ["warn_a.record"]
    assert all(f.gate_action == "warn" and f.severity == "medium" for f in found)
    assert found[3].metadata["modules"] == ["ghost_module"]
    assert "have no access rules in module warn_a" in found[0].evidence_excerpt
    assert level.level == "medium"
    assert (result.status, result.label, result.clean) == ("passed", "Passed with warnings", False)
    assert "missing_access_rules" in result.reason


def test_failing_module_load_blocks(standin: dict[str, Run]) -> None:
    run = standin["fail_load"]
    assert run.returncode == 255
    summary, found, level, result = analyze(run.text, changed_modules_count=1)
    assert not summary.success
    assert summary.registry_failed
    assert not summary.registry_loaded
    assert summary.error_count == 2  # ERROR registry + CRITICAL server
    assert summary.failed_module == "broken_custom"
    assert [g.severity for g in summary.warning_groups] == ["critical", "error", "warning"]
    assert kinds(found) == ["registry_load_failure"]  # the traceback is not reported twice
    failure = found[0]
    assert (failure.severity, failure.gate_action) == ("critical", "block")
    assert failure.confidence >= 0.9
    assert failure.metadata["module"] == "broken_custom"
    assert failure.metadata["exception"].startswith("odoo.tools.convert.ParseError: while parsing")
    assert "Failed to initialize database" in failure.evidence_excerpt
    assert "ParseError" in failure.evidence_excerpt
    assert len(failure.evidence_excerpt) <= 1200
    assert failure.evidence_excerpt.count("\n") <= 12
    assert level.to_dict() == {"level": "high", "score": 59}  # 60 x 0.95 + 2 for 1 module
    assert (result.status, result.label, result.clean, result.waived) == (
        "failed", "Failed", False, False,
    )  # fmt: skip
    assert result.reason.startswith("registry_load_failure: ")
    waived = verdict(summary, found, waived=True)
    assert (waived.status, waived.waived, waived.clean) == ("passed", True, False)
    assert waived.reason.startswith("waived: registry_load_failure")


def test_failing_tests_block(standin: dict[str, Run]) -> None:
    run = standin["fail_test"]
    assert run.returncode == 1
    summary, found, level, result = analyze(run.text)
    assert not summary.success
    assert summary.registry_loaded
    assert not summary.registry_failed
    assert (summary.tests_run, summary.tests_failed, summary.tests_passed) == (3, 1, False)
    assert {g.category for g in summary.warning_groups} == {"test_failure"}
    assert kinds(found) == ["test_failure"]  # all 4 ERROR records explained by one finding
    failure = found[0]
    assert (failure.severity, failure.gate_action) == ("high", "block")
    assert failure.metadata["module"] == "flaky_custom"
    assert failure.metadata["tests"] == ["TestStandin.test_02_standin"]
    assert failure.metadata["failures"] == 1
    assert "AssertionError: 'draft' != 'done'" in failure.evidence_excerpt
    assert level.level == "high"
    assert result.status == "failed"
    assert "flaky_custom" in result.reason


def test_log_cut_before_registry_loaded(standin: dict[str, Run]) -> None:
    lines = standin["update"].text.splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if "Loading module stock_custom" in line)
    summary, found, _, result = analyze("".join(lines[: cut + 1]))
    assert not summary.success
    assert summary.loading_started
    assert kinds(found) == ["registry_load_failure"]
    assert found[0].confidence == 0.6
    assert found[0].metadata["reason"] == "incomplete"
    assert result.status == "failed"


# --- incremental feeding -----------------------------------------------------------


def test_incremental_feeding_equals_whole_file(standin: dict[str, Run]) -> None:
    texts = [run.text for run in standin.values()]
    texts += [sample("odoo17_update_warnings.log"), sample("odoo16_serving_errors.log")]
    for seed, text in enumerate(texts):
        whole = summarize(text)
        records = parse_log(text)
        by_chunks = streamed(text.encode(), seed, keep="all")
        assert by_chunks.summary() == whole
        assert by_chunks.records == records
        by_lines = LogSummarizer()
        by_lines.feed_lines(text.splitlines())
        by_lines.close()
        assert by_lines.summary() == whole
        assert findings(whole, records) == findings(by_lines.summary(), by_lines.records)


def test_summary_while_streaming() -> None:
    data = sample("odoo17_update_warnings.log").encode()
    summarizer = LogSummarizer()
    half = data.index(b"Loading module stock_custom")
    summarizer.feed(data[:half])
    partial = summarizer.summary()
    assert partial.updated_modules == ("sale_custom",)
    assert not partial.success  # the registry is not loaded yet
    assert [s.name for s in partial.sections] == ["startup", "loading", "module update"]
    summarizer.feed(data[half:])
    summarizer.close()
    assert summarizer.summary() == summarize(data)


# --- hand-written samples of real Odoo output ----------------------------------------


def test_real_odoo_update_with_warnings() -> None:
    summary, found, level, result = analyze(sample("odoo17_update_warnings.log"), 2)
    assert summary.odoo_version == "17.0-20240510"
    assert (summary.total_modules, summary.updated_modules) == (96, ("sale_custom", "stock_custom"))
    assert summary.duration_ms == 5856
    assert summary.success
    assert summary.error_count == 0
    assert summary.warning_count == 6
    groups = {(g.category, g.count) for g in summary.warning_groups}
    assert groups == {
        ("deprecation", 2),  # the same deprecation from two places collapses
        ("deprecation", 1),
        ("field_conflict", 1),
        ("field_definition", 1),
        ("access_rules", 1),
    }
    ustr = next(g for g in summary.warning_groups if g.count == 2)
    assert ustr.message == (
        "<path>:<n>: DeprecationWarning: Since <n>, odoo.tools.ustr is deprecated,"
        " use str() instead"
    )
    assert kinds(found) == ["missing_access_rules", "deprecation", "deprecation", "field_conflict"]
    assert found[0].metadata["models"] == ["stock.custom.line", "stock.custom.batch"]
    assert {f.gate_action for f in found[1:]} == {"none"}
    assert level.level == "medium"
    assert result.label == "Passed with warnings"


def test_real_odoo_serving_log_with_errors() -> None:
    text = sample("odoo16_serving_errors.log")
    records = parse_log(text)
    assert records[0].level == "INFO"  # ANSI colors stripped
    health = next(r for r in records if "/web/health" in r.message)
    assert (health.dbname, health.perf_info) == (None, "0 0.000 0.003")
    summary, found, level, result = analyze(text)
    assert summary.odoo_version == "16.0-20231215"
    assert [s.name for s in summary.sections] == ["startup", "loading", "serving"]
    assert summary.updated_modules == ()
    assert summary.total_modules == 78
    assert (summary.error_count, summary.warning_count) == (2, 1)
    assert not summary.success
    assert kinds(found) == ["module_not_loaded", "traceback"]
    assert found[0].metadata["modules"] == ["sale_custom_legacy"]
    assert found[0].gate_action == "block"
    tb = found[1]
    assert tb.metadata["logger"] == "odoo.http"
    assert tb.metadata["exception"].startswith("smtplib.SMTPAuthenticationError")
    assert "Hunter2Secret" not in tb.evidence_excerpt
    assert "Hunter2Secret" not in tb.metadata["exception"]
    assert "password=***" in tb.evidence_excerpt
    stripe = next(r for r in records if "Stripe webhook" in r.message)
    assert "sk_live" not in excerpt(stripe)
    assert level.level == "high"
    assert result.status == "failed"
    assert "+1 more blocking" in result.reason


# --- robustness ----------------------------------------------------------------------


def test_garbage_lines_do_not_crash(standin: dict[str, Run]) -> None:
    rng = random.Random(1234)
    real = standin["fail_load"].text.encode()
    garbage = [
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).replace(b"\n", b"")
        for _ in range(200)
    ]
    garbage += [
        b"\x00" * 50,
        b"A" * (MAX_LINE_LENGTH * 50),
        b"2024-05-13 08:01:12,345 28 " + b"X" * 100_000,
        b"2024-13-45 99:99:99,000 1 INFO db odoo: impossible date",
        b"\r\r\r",
        "\u202e\ufeff 🙂 \udcff".encode("utf-8", "surrogatepass"),
    ]
    rng.shuffle(garbage)
    mixed = b"\n".join(garbage[:50]) + b"\n" + real + b"\n".join(garbage[50:]) + b"\n"
    summarizer = streamed(mixed, 99, keep="all")
    summary = summarizer.summary()
    assert summary.record_count == len(parse_log(real))
    assert summary.registry_failed
    assert not summary.success
    assert summary.line_count == mixed.count(b"\n")
    for record in summarizer.records:
        for line in record.message.split("\n"):
            assert len(line) <= MAX_LINE_LENGTH + 20
    found = findings(summary, summarizer.records)
    assert kinds(found)[0] == "registry_load_failure"
    for finding in found:
        assert len(finding.evidence_excerpt) <= 1200
        assert "\x00" not in finding.evidence_excerpt
    assert verdict(summary, found).status == "failed"
    only_garbage = LogSummarizer()
    only_garbage.feed(b"\n".join(garbage))
    only_garbage.close()
    empty = only_garbage.summary()
    assert (empty.record_count, empty.error_count, empty.success) == (0, 0, False)


def test_kept_records_are_bounded() -> None:
    line = "2024-05-13 08:01:12,345 28 WARNING db odoo.models: record {} has no name \n"
    summarizer = LogSummarizer(max_records=10)
    summarizer.feed("".join(line.format(i) for i in range(500)))
    summary = summarizer.summary()
    assert summary.warning_count == 500
    assert [(g.count, g.message) for g in summary.warning_groups] == [
        (500, "record <n> has no name")
    ]
    assert len(summarizer.records) == 10


def test_non_odoo_output_gives_a_legacy_verdict() -> None:
    text = "Collecting odoo-addon-foo\n  Downloading foo-1.0.tar.gz (12 kB)\nDone.\n"
    summary, found, level, result = analyze(text)
    assert (summary.record_count, summary.line_count, found) == (0, 3, [])
    assert [s.name for s in summary.sections] == ["startup"]
    assert (result.status, result.legacy, result.clean) == ("passed", True, False)
    assert result.label == "Passed (legacy check)"
    assert level.to_dict() == {"level": "low", "score": 0}


# --- normalization, redaction, rules ------------------------------------------------


def test_normalization_collapses_variable_parts() -> None:
    a = normalize_message(
        "Access Error on sale.order(42,) for user 7: '/opt/odoo/x.py' uid 0xdeadbeef"
    )
    b = normalize_message(
        'Access Error on sale.order(1337,) for user 12: "/srv/y/z.py" uid 0x1f2e3d'
    )
    assert a == b == "Access Error on sale.order(<n>,) for user <n>: <str> uid <id>"
    assert normalize_message("in module stock_custom, see /mnt/a/b.xml:12") == (
        "in module <name>, see <path>:<n>"
    )
    assert normalize_message("loading 96 modules...") == "loading <n> modules..."


def test_redaction() -> None:
    cases = {
        "dsn=host=db user=odoo password=S3cret! dbname=prod": "password=*** dbname=prod",
        "{'db_password': 'hunter2', 'x': 1}": "'db_password': '***'",
        '{"api_key": "abc123", "token":"t0k"}': '"api_key": "***", "token":"***"',
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x": "Authorization: Bearer ***",
        "postgresql://odoo:pa55w0rd@db:5432/prod": "postgresql://odoo:***@db:5432/prod",
        "stripe key sk_live_51HxAbCdEf": "stripe key ***",
        "admin_passwd = master": "admin_passwd = ***",
    }
    for raw, expected in cases.items():
        assert expected in redact(raw), raw
    untouched = "module auth_totp: creating or updating database tables"
    assert redact(untouched) == untouched
    record = parse_line(
        "2024-05-13 08:01:12,345 28 ERROR prod odoo.sql_db: bad connection "
        "password=Sup3rSecret smtp_password: 'x y'"
    )
    assert record is not None
    text = excerpt(record)
    assert "Sup3rSecret" not in text
    assert "password=***" in text
    assert "smtp_password: '***" in text


def _finding(kind: str, severity: Severity, gate: GateAction, confidence: float = 1.0) -> Finding:
    return Finding(kind, severity, confidence, "", gate, kind)


def test_risk_rules() -> None:
    assert risk([], 0).to_dict() == {"level": "low", "score": 0}
    assert risk([], 50).to_dict() == {"level": "low", "score": 20}  # modules count capped
    low = [_finding("deprecation", "low", "none")] * 3
    assert risk(low, 0).to_dict() == {"level": "low", "score": 3 + 2 * 2}
    warn = [_finding("missing_access_rules", "medium", "warn")]
    assert risk(warn, 0).to_dict() == {"level": "medium", "score": 12}
    blocking = [_finding("error_logged", "high", "block", 0.5)]
    assert risk(blocking, 0).to_dict() == {"level": "high", "score": 18}
    many = [_finding(k, "critical", "block") for k in ("a", "b")]
    assert risk(many, 10).to_dict() == {"level": "high", "score": 100}


def test_verdict_rules(standin: dict[str, Run]) -> None:
    clean = summarize(standin["update"].text)
    assert verdict(clean, [], waived=True).waived is False  # nothing to waive
    noted = verdict(clean, [_finding("deprecation", "low", "none")])
    assert (noted.status, noted.clean) == ("passed", True)
    blocked = verdict(clean, [_finding("error_logged", "high", "block")])
    assert (blocked.status, blocked.reason) == ("failed", "error_logged: error_logged")
    failed = summarize(standin["fail_test"].text)
    no_records = findings(failed, [])  # from the summary alone
    assert kinds(no_records) == ["test_failure"]
    assert no_records[0].metadata["testsRun"] == 3
    assert isinstance(failed, LogSummary)
    assert verdict(failed, []).status == "failed"  # an unsuccessful summary never passes
