"""The shipped post-receive hook in a real bare repository, notifying a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ocore.git.webhooks import BranchDeleted, PushEvent, parse_generic_webhook, post_receive_hook
from tests.fixtures.gitrepo import GitRepo, git

SECRET = "generic-hook-secret"


class Sink:
    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.url = ""


@pytest.fixture
def sink() -> Iterator[Sink]:
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            sink.deliveries.append((dict(self.headers.items()), body))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/api/webhooks/git/project-1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


@pytest.fixture
def hooked(repo: GitRepo, sink: Sink, tmp_path: Path) -> GitRepo:
    hook = repo.origin / "hooks" / "post-receive"
    hook.write_text(post_receive_hook())
    hook.chmod(0o755)
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    git("config", "ocore.webhookUrl", sink.url, cwd=repo.origin)
    git("config", "ocore.webhookSecretFile", str(secret), cwd=repo.origin)
    return repo


def test_push_create_and_delete_are_delivered_signed(hooked: GitRepo, sink: Sink) -> None:
    first = hooked.commit({"a.txt": "1"}, "First commit", push=None)
    second = hooked.commit(
        {"a.txt": "2"}, 'Second: "quotes", \\backslash\\ and ünïcode\n\nbody', push="main"
    )
    headers, body = sink.deliveries[-1]
    event = parse_generic_webhook(headers, body, SECRET)
    assert isinstance(event, PushEvent)
    assert (event.branch, event.before, event.after) == ("main", None, second)
    assert [c.sha for c in event.commits] == [second, first]
    assert event.commits[0].message == 'Second: "quotes", \\backslash\\ and ünïcode\n\nbody'
    assert event.commits[0].author_name == "Ada Lovelace"

    third = hooked.commit({"a.txt": "3"}, "Third")
    event = parse_generic_webhook(*sink.deliveries[-1], SECRET)
    assert isinstance(event, PushEvent)
    assert event.before == second
    assert event.after == third
    assert [c.sha for c in event.commits] == [third]

    # A new branch lists only the commits no other branch had.
    hooked.switch("feature/y", create=True)
    fourth = hooked.commit({"b.txt": "b"}, "Feature work", push="feature/y")
    event = parse_generic_webhook(*sink.deliveries[-1], SECRET)
    assert isinstance(event, PushEvent)
    assert event.branch == "feature/y"
    assert [c.sha for c in event.commits] == [fourth]

    hooked.delete_branch("feature/y")
    event = parse_generic_webhook(*sink.deliveries[-1], SECRET)
    assert isinstance(event, BranchDeleted)
    assert event.branch == "feature/y"
    ids = [parse_generic_webhook(h, b, SECRET).delivery_id for h, b in sink.deliveries]
    assert len(set(ids)) == len(ids) == 4


def test_tags_are_not_sent_and_a_wrong_secret_is_caught(hooked: GitRepo, sink: Sink) -> None:
    hooked.commit({"a.txt": "1"}, "First")
    hooked.tag("v1")
    assert len(sink.deliveries) == 1
    from ocore.core.errors import WebhookSignatureInvalid

    with pytest.raises(WebhookSignatureInvalid):
        parse_generic_webhook(*sink.deliveries[0], "not the secret")


def test_unconfigured_hook_never_blocks_a_push(repo: GitRepo) -> None:
    hook = repo.origin / "hooks" / "post-receive"
    hook.write_text(post_receive_hook())
    hook.chmod(0o755)
    sha = repo.commit({"a.txt": "1"}, "First")
    assert git("rev-parse", "refs/heads/main", cwd=repo.origin).strip() == sha
