"""A project's requirements.txt goes into the deployed colour's own venv, not the shared one.

The module names a Python library in ``external_dependencies`` (the stand-in
Odoo, like Odoo, refuses to install it when the library cannot be
imported); the repository vendors that library as a wheel, so pip needs no
index.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import zipfile
from pathlib import Path

import httpx

from tests.conftest import Tenant
from tests.deployments.conftest import manifest, provisioned
from tests.deployments.test_deploy import deploy, fetch, follow, serving
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.sshd import Sshd

NEEDS_LIBRARY = manifest("17.0.1.0.0", external_dependencies={"python": ["shopext"]})


def wheel(name: str, version: str) -> bytes:
    """A pure-Python wheel holding one module ``name`` with ``VERSION``."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n'.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()


def executable_of(pid_file: Path) -> bytes:
    pid = pid_file.read_text().strip()
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]


def imports(python: Path, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


async def test_requirements_go_into_the_colours_venv(
    api: httpx.AsyncClient,
    tenant: Tenant,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
) -> None:
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.0.1.0")}, "Start")
    env = await provisioned(api, tenant, sshd, nginx, base_dir, repo)
    instance_dir = base_dir / "instances" / env["slug"]
    shared_python = base_dir / "odoo" / "17.0" / "venv" / "bin" / "python"

    # Without the library the module update fails, as in Odoo, and blue keeps serving.
    missing = repo.commit({"shop_custom/__manifest__.py": NEEDS_LIBRARY}, "Need shopext")
    failed = await deploy(api, tenant, env, commitSha=missing)
    events = await follow(api, tenant, env, failed["id"])
    assert events[-1]["data"]["status"] == "failed"
    failed = await fetch(api, tenant, env, failed["id"])
    assert "Module update failed" in failed["errorMessage"]
    build = next(s for s in failed["steps"] if s["name"] == "build")
    assert "no requirements.txt" in build["output"]
    assert "External dependency shopext not installed" in "".join(
        s["output"] for s in failed["steps"]
    )
    assert await serving(nginx, env["slug"]) == 200

    # With requirements.txt naming the vendored wheel, pip installs it into green's venv.
    wanted = repo.commit(
        {
            "wheels/shopext-1.0-py3-none-any.whl": wheel("shopext", "1.0"),
            "requirements.txt": "./wheels/shopext-1.0-py3-none-any.whl\n",
        },
        "Vendor shopext",
    )
    deployed = await deploy(api, tenant, env, commitSha=wanted)
    events = await follow(api, tenant, env, deployed["id"])
    assert events[-1]["data"]["status"] == "succeeded", events[-1]
    deployed = await fetch(api, tenant, env, deployed["id"])
    assert deployed["activeColor"] == "green"
    build = next(s for s in deployed["steps"] if s["name"] == "build")
    assert "$ pip install -r requirements.txt" in build["output"]
    assert "Successfully installed shopext-1.0" in build["output"]
    green_python = instance_dir / "green" / "venv" / "bin" / "python"
    assert imports(green_python, "shopext")
    assert imports(green_python, "asyncpg")  # the shared venv's packages stay visible
    assert not imports(shared_python, "shopext")
    assert not (instance_dir / "blue" / "venv").exists()
    assert executable_of(instance_dir / "green" / "odoo.pid") == str(green_python).encode()
    assert await serving(nginx, env["slug"]) == 200

    # A requirement pip cannot install fails the build; green keeps serving.
    broken = repo.commit({"requirements.txt": "./wheels/absent-1.0-py3-none-any.whl\n"}, "Typo")
    failing = await deploy(api, tenant, env, commitSha=broken)
    events = await follow(api, tenant, env, failing["id"])
    assert events[-1]["data"]["status"] == "failed"
    failing = await fetch(api, tenant, env, failing["id"])
    assert failing["errorMessage"] == (
        "pip could not install requirements.txt; see the build step's output."
    )
    build = next(s for s in failing["steps"] if s["name"] == "build")
    assert build["status"] == "failed"
    assert "absent-1.0-py3-none-any.whl" in build["output"]
    assert "update modules" not in [s["name"] for s in failing["steps"]]
    instance = (
        await api.get(f"/api/instances/{env['instance']['id']}", headers=tenant.headers)
    ).json()
    assert instance["activeColor"] == "green"
    assert await serving(nginx, env["slug"]) == 200
    assert imports(green_python, "shopext")
