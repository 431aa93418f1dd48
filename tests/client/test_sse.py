"""The SSE line parser on its own: framing rules the live tests cannot force."""

from __future__ import annotations

from ocore.client.sse import Event, parse


def test_events_comments_and_multiline_data() -> None:
    lines = [
        ": ping",
        "id: 1-0",
        "event: step",
        'data: {"a": 1}',
        "",
        "",
        "data: first",
        "data:second",
        "",
        "id: 2-0",
        "event: log",
        "data: x",
        "retry: 10",
        "",
    ]
    assert list(parse(lines)) == [
        Event("step", "1-0", '{"a": 1}'),
        Event("message", "1-0", "first\nsecond"),
        Event("log", "2-0", "x"),
    ]


def test_an_event_cut_before_its_blank_line_is_dropped() -> None:
    lines = ["id: 1-0", "event: log", "data: whole", "", "id: 2-0", "event: log", "data: cut"]
    assert [e.id for e in parse(lines)] == ["1-0"]


def test_crlf_lines_and_an_empty_id_reset() -> None:
    lines = ["id: 5-0\r\n", "data: a\r\n", "\r\n", "id:\r\n", "data: b\r\n", "\r\n"]
    assert list(parse(lines)) == [Event("message", "5-0", "a"), Event("message", None, "b")]
