"""One small history shared by the provider tests, so every provider is asked the same things.

    main:     c1 ── c2 ── c3          tags: v1.0 (annotated) → c2, light → c1
                     \\
    feature/x:        c4 ── c5
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tests.fixtures.gitrepo import GitRepo

ADA = ("Ada Lovelace", "ada@example.com")
GRACE = ("Grace Hopper", "grace@example.com")
T0 = 1_700_000_000


@dataclass
class History:
    c1: str
    c2: str
    c3: str
    c4: str
    c5: str


def build_history(repo: GitRepo) -> History:
    c1 = repo.commit(
        {"README.md": "hello\n", "sale_x/__init__.py": ""}, "Initial", author=ADA, when=T0
    )
    c2 = repo.commit(
        {"sale_x/models.py": "x = 1\n", "docs/old.txt": "old\n"},
        "Add models\n\nLonger body\nwith two lines.",
        author=GRACE,
        when=T0 + 3600,
    )
    repo.tag("v1.0")
    repo.tag("light", annotated=False, target=c1)
    c3 = repo.commit({"README.md": "hello again\n"}, "Update readme", author=ADA, when=T0 + 7200)
    repo.switch("feature/x", create=True, start=c2)
    c4 = repo.commit(
        {"docs/old.txt": None, "docs/new.txt": "old\n"},
        "Rename doc",
        author=ADA,
        when=T0 + 9000,
        push="feature/x",
    )
    c5 = repo.commit(
        {"sale_x/models.py": "x = 2\n"}, "Change x", author=GRACE, when=T0 + 9600, push="feature/x"
    )
    repo.switch("main")
    return History(c1, c2, c3, c4, c5)


def at(offset: int) -> datetime:
    return datetime.fromtimestamp(T0 + offset, UTC)
