"""Odoo module change detection between two commits of a real addons repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocore.core.errors import InvalidInput
from ocore.git.modules import ModuleChange, detect_module_changes, parse_manifest
from ocore.git.providers import GitCliProvider
from ocore.hosts import HostConnection, LocalHost
from tests.fixtures.gitrepo import GitRepo


def manifest(version: str, **extra: object) -> str:
    fields = {"name": "Module", "version": version, "depends": ["base"], **extra}
    body = "".join(f"    {key!r}: {value!r},\n" for key, value in fields.items())
    return f"# -*- coding: utf-8 -*-\n# License LGPL-3\n{{\n{body}}}\n"


@pytest.fixture
def provider(repo: GitRepo, cache_root: str) -> GitCliProvider:
    return GitCliProvider(LocalHost(), repo.url, cache_root=cache_root)


@pytest.fixture
def base(repo: GitRepo) -> str:
    return repo.commit(
        {
            "README.md": "addons\n",
            "requirements.txt": "",
            "sale_x/__manifest__.py": manifest("17.0.1.0.0"),
            "sale_x/__init__.py": "",
            "sale_x/models/order.py": "# order\n",
            "stock_y/__manifest__.py": manifest("17.0.1.0.0"),
            "stock_y/__init__.py": "",
            "old_mod/__manifest__.py": manifest("17.0.1.0.0"),
            "old_mod/__init__.py": "",
            # The nested layout: modules one level down.
            "addons/web_z/__manifest__.py": manifest("17.0.2.0.0"),
            "addons/web_z/static/src/app.js": "// app\n",
            "addons/README.md": "not a module\n",
        },
        "Base",
    )


async def test_file_change_bump_new_removed(
    repo: GitRepo, provider: GitCliProvider, base: str
) -> None:
    head = repo.commit(
        {
            "sale_x/models/order.py": "# order v2\n",  # changed, same version
            "stock_y/__manifest__.py": manifest("17.0.1.1.0"),  # version bump
            "new_mod/__manifest__.py": manifest("17.0.1.0.0"),  # new
            "new_mod/__init__.py": "",
            "draft_mod/__manifest__.py": manifest("17.0.1.0.0", installable=False),
            "old_mod": None,  # removed
            "addons/web_z/static/src/app.js": "// app v2\n",  # nested, changed
            "requirements.txt": "requests\n",
        },
        "Work",
    )
    changes = await detect_module_changes(provider, base, head)
    assert changes.changed == ("sale_x", "stock_y", "web_z")  # sorted by name
    assert changes.version_bumped == ("stock_y",)
    assert changes.to_update == ("stock_y",)
    assert changes.new == ("draft_mod", "new_mod")
    assert changes.to_install == ("new_mod",)  # not installable: not installed
    assert changes.removed == ("old_mod",)
    assert changes.other_files == ("requirements.txt",)
    by_name = {m.name: m for m in changes.modules}
    assert by_name["stock_y"] == ModuleChange(
        "stock_y", "stock_y", "changed", "17.0.1.0.0", "17.0.1.1.0", True
    )
    assert by_name["web_z"].path == "addons/web_z"
    assert by_name["web_z"].old_version == by_name["web_z"].new_version == "17.0.2.0.0"
    assert by_name["old_mod"].status == "removed"


async def test_manifest_edit_without_bump_is_only_a_change(
    repo: GitRepo, provider: GitCliProvider, base: str
) -> None:
    head = repo.commit(
        {"sale_x/__manifest__.py": manifest("17.0.1.0.0", summary="Better words")}, "Doc"
    )
    changes = await detect_module_changes(provider, base, head)
    assert changes.changed == ("sale_x",)
    assert changes.version_bumped == ()


async def test_rollback_direction_and_given_file_list(
    repo: GitRepo, provider: GitCliProvider, base: str
) -> None:
    head = repo.commit(
        {
            "stock_y/__manifest__.py": manifest("17.0.2.0.0"),
            "brand_new/__manifest__.py": manifest("1.0"),
        },
        "Forward",
    )
    back = await detect_module_changes(provider, head, base)
    assert back.removed == ("brand_new",)
    assert back.version_bumped == ("stock_y",)  # a version change either way needs -u
    # A caller that already has the file list (from a REST provider) passes it in.
    files = await provider.changed_files(base, head)
    given = await detect_module_changes(provider, base, head, files)
    assert given == await detect_module_changes(provider, base, head)


async def test_module_moved_into_nested_layout(
    repo: GitRepo, provider: GitCliProvider, base: str
) -> None:
    moved = {
        "sale_x/__manifest__.py": None,
        "sale_x/__init__.py": None,
        "sale_x/models/order.py": None,
        "addons/sale_x/__manifest__.py": manifest("17.0.1.0.1"),
        "addons/sale_x/__init__.py": "",
        "addons/sale_x/models/order.py": "# order\n",
    }
    head = repo.commit(moved, "Move")
    changes = await detect_module_changes(provider, base, head)
    assert changes.modules == (
        ModuleChange("sale_x", "addons/sale_x", "changed", "17.0.1.0.0", "17.0.1.0.1", True),
    )


async def test_malformed_manifest_is_a_clear_error(
    repo: GitRepo, provider: GitCliProvider, base: str
) -> None:
    head = repo.commit({"sale_x/__manifest__.py": "{'name': 'Sale X', 'version': \n"}, "Broken")
    with pytest.raises(
        InvalidInput,
        match=r"sale_x/__manifest__.py at commit [0-9a-f]{12} is not a valid Odoo manifest",
    ):
        await detect_module_changes(provider, base, head)


async def test_manifests_are_never_executed(
    repo: GitRepo, provider: GitCliProvider, base: str, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {canary}') or {{'version': '9.0'}}"
    head = repo.commit({"stock_y/__manifest__.py": evil}, "Evil")
    with pytest.raises(InvalidInput, match="not a valid Odoo manifest"):
        await detect_module_changes(provider, base, head)
    assert not canary.exists()


async def test_over_ssh(host: HostConnection, repo: GitRepo, base: str, cache_root: str) -> None:
    head = repo.commit({"stock_y/__manifest__.py": manifest("17.0.1.0.1")}, "Bump")
    provider = GitCliProvider(host, repo.url, cache_root=cache_root)
    assert (await detect_module_changes(provider, base, head)).to_update == ("stock_y",)


async def test_duplicate_module_names(repo: GitRepo, provider: GitCliProvider, base: str) -> None:
    head = repo.commit(
        {"addons/stock_y/__manifest__.py": manifest("1.0"), "stock_y/x.py": ""}, "Dup"
    )
    with pytest.raises(InvalidInput, match="module stock_y exists twice"):
        await detect_module_changes(provider, base, head)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("['not', 'a', 'dict']", "holds a list, not a dict"),
        ("{'version': 17}", "'version' must be a string"),
        ("{'a': 1} {'b': 2}", "line 1"),
        ("open('/etc/passwd').read()", "not a valid Odoo manifest"),
        ("", "not a valid Odoo manifest"),
    ],
)
def test_parse_manifest_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_manifest(text, "m/__manifest__.py at commit abc")


def test_parse_manifest_accepts_odoo_style() -> None:
    text = manifest("16.0.1.0.0", data=["views/a.xml"], installable=True, license="LGPL-3")
    parsed = parse_manifest(text, "x")
    assert parsed["version"] == "16.0.1.0.0"
    assert parsed["data"] == ["views/a.xml"]
