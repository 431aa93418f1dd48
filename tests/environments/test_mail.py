"""A non-production clone's own mail catcher, read through ``/api/environments/{id}/mail``.

Real host (sshd + nginx + stand-in Odoo); Mailpit is the stand-in of
``tests/fixtures/mailpit_standin`` installed as ``<baseDir>/bin/mailpit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocore.core.auth import Role
from ocore.hosts import LocalHost
from ocore.hosts.mailpit import MailCatcher, mail_ports
from ocore.hosts.runtime import InstanceLayout
from ocore.settings import Settings
from tests.conftest import Tenant
from tests.deployments.conftest import manifest, provisioned
from tests.environments.test_lifecycle import environment_of, job_for
from tests.fixtures import mailpit_standin
from tests.fixtures.gitrepo import GitRepo
from tests.fixtures.nginx import Nginx
from tests.fixtures.sshd import Sshd


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _mailpit_pid(instance_dir: Path) -> int | None:
    """The instance's running Mailpit (recognized by its database path), if any."""
    try:
        pid = int((instance_dir / "mailpit" / "mailpit.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if str(instance_dir / "mailpit" / "mailpit.db") in _cmdline(pid) else None


@pytest.fixture
def no_leftover_mailpit(base_dir: Path) -> Iterator[None]:
    yield
    for instance_dir in (base_dir / "instances").glob("*"):
        pid = _mailpit_pid(instance_dir)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def _gone(pid: int, timeout: float = 10) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while _cmdline(pid) not in ([], [""]):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _clone(
    api: httpx.AsyncClient, tenant: Tenant, source_id: str, branch: str, kind: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Clone and wait: (the environment as the API shows it afterwards, its job)."""
    response = await api.post(
        f"/api/environments/{source_id}/clone",
        json={"targetBranch": branch, "targetType": kind},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    job = await job_for(api, tenant, response.json()["id"])
    assert job["status"] == "succeeded", (
        job["error"],
        [(s["name"], s["output"][-800:]) for s in job["steps"]],
    )
    environment = await api.get(
        f"/api/environments/{response.json()['id']}", headers=tenant.headers
    )
    return environment.json(), job


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if s["name"] == name)


async def test_clone_gets_a_mail_catcher_read_through_the_api(
    api: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    settings: Settings,
    sshd: Sshd,
    nginx: Nginx,
    base_dir: Path,
    repo: GitRepo,
    no_leftover_mailpit: None,
) -> None:
    binary = base_dir / "bin" / "mailpit"
    binary.unlink(missing_ok=True)
    repo.commit({"shop_custom/__manifest__.py": manifest("17.0.1.0.0")}, "first")
    prod = await provisioned(api, tenant, sshd, nginx, base_dir, repo, "production")
    production = await environment_of(api, tenant, prod["instance"]["id"])
    assert production["mailpitPort"] is None

    # Production never has a mail catcher.
    response = await api.get(f"/api/environments/{production['id']}/mail", headers=tenant.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "mail_catcher_not_found"

    # No mailpit on the host: the clone still succeeds, with mail disabled, and says so.
    development, job = await _clone(api, tenant, production["id"], "feature-x", "development")
    assert (
        "WARNING: No mail catcher: mailpit is not installed" in _step(job, "mail catcher")["output"]
    )
    assert development["status"] == "ready"
    assert development["mailpitPort"] is None
    assert "mailpit is not installed" in development["statusMessage"]
    assert "disabled (dummy server 'invalid')" in _step(job, "neutralize")["output"]
    response = await api.get(
        f"/api/environments/{development['id']}/mail/api/v1/messages", headers=tenant.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "mail_catcher_not_found"

    # With mailpit installed, the staging clone gets its own, and its mail goes there.
    mailpit_standin.install(binary)
    staging, job = await _clone(api, tenant, production["id"], "staging", "staging")
    instance = (
        await api.get(f"/api/instances/{staging['instanceId']}", headers=tenant.headers)
    ).json()
    ports = mail_ports(
        instance["httpPortHost"], settings.instance_port_min, settings.instance_port_max
    )
    assert ports is not None
    assert staging["mailpitPort"] == ports[0]
    assert staging["statusMessage"] is None
    assert f"sent to the mail catcher at 127.0.0.1:{ports[0]}" in _step(job, "neutralize")["output"]
    instance_dir = base_dir / "instances" / staging["instanceSlug"]
    pid = _mailpit_pid(instance_dir)
    assert pid is not None
    assert f"127.0.0.1:{ports[1]}" in _cmdline(pid)

    async with httpx.AsyncClient(base_url=nginx.url, timeout=30) as web:
        sent = await web.post(
            "/standin/send-mail",
            json={"to": "customer@example.com", "subject": "Order S00042", "body": "Thank you!"},
            headers={"Host": f"{staging['instanceSlug']}.localhost"},
        )
    assert sent.status_code == 200, sent.text
    assert sent.json()["server"]["smtp_port"] in (ports[0], str(ports[0]))

    base = f"/api/environments/{staging['id']}/mail"
    response = await api.get(f"{base}/api/v1/messages", headers=tenant.headers)
    assert response.status_code == 200, response.text
    mailbox = response.json()
    assert mailbox["total"] == 1
    message = mailbox["messages"][0]
    assert message["Subject"] == "Order S00042"
    assert message["To"] == [{"Name": "", "Address": "customer@example.com"}]
    assert "private" in response.headers["cache-control"]
    full = await api.get(f"{base}/api/v1/message/{message['ID']}", headers=tenant.headers)
    assert full.status_code == 200
    assert "Thank you!" in full.json()["Text"]
    view = await api.get(f"{base}/view/{message['ID']}.txt", headers=tenant.headers)
    assert view.status_code == 200
    assert "Thank you!" in view.text
    assert any(
        csp.startswith("sandbox") for csp in view.headers.get_list("content-security-policy")
    )

    # The UI: its root redirects into the webroot, whose page names the proxy path.
    response = await api.get(base, headers=tenant.headers)
    assert response.status_code == 302
    assert response.headers["location"] == f"{base}/"
    response = await api.get(f"{base}/", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f'data-webroot="{base}/"' in response.text
    assert "content-security-policy" in response.headers

    # Any member may read; other organizations and anonymous callers may not.
    viewer = await tenant.add_member(Role.VIEWER)
    response = await api.get(f"{base}/api/v1/messages", headers=viewer.headers)
    assert response.status_code == 200
    response = await api.get(f"{base}/api/v1/messages", headers=other_tenant.headers)
    assert response.status_code == 404
    assert (await api.get(f"{base}/api/v1/messages")).status_code == 401

    # Nothing outside Mailpit's webroot is reachable.
    for sneaky in ("..%2F..%2F..%2Fhealth", "%2e%2e/%2e%2e/x", "api/v1/%2E%2E/%2E%2E"):
        response = await api.get(f"{base}/{sneaky}", headers=tenant.headers)
        assert response.status_code == 400, (sneaky, response.text)
        assert response.json()["code"] == "invalid_mail_path"

    # The UI's actions pass too (DELETE with a body).
    response = await api.request(
        "DELETE", f"{base}/api/v1/messages", json={"IDs": [message["ID"]]}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.text == "ok"
    response = await api.get(f"{base}/api/v1/messages", headers=tenant.headers)
    assert response.json()["total"] == 0

    # A stopped catcher is a 502 problem, not a hang.
    os.kill(pid, signal.SIGTERM)
    assert await _gone(pid)
    response = await api.get(f"{base}/api/v1/messages", headers=tenant.headers)
    assert response.status_code == 502
    assert response.json()["code"] == "mail_catcher_unreachable"
    catcher = MailCatcher(
        LocalHost(),
        InstanceLayout(str(base_dir), staging["instanceSlug"]),
        ports[0],
        webroot=f"{base}/",
    )
    pid = await catcher.start(str(binary))
    await catcher.wait_ready()
    response = await api.get(f"{base}/api/v1/messages", headers=tenant.headers)
    assert response.status_code == 200

    # Deleting the environment stops its Mailpit before the instance directory goes.
    response = await api.delete(f"/api/environments/{staging['id']}", headers=tenant.headers)
    assert response.status_code == 202
    job = await job_for(api, tenant, staging["id"])
    assert job["status"] == "succeeded", job["error"]
    assert "mailpit stopped" in _step(job, "stop processes")["output"]
    assert await _gone(pid, timeout=1)
    assert not instance_dir.exists()
    assert (await api.get(f"{base}/api/v1/messages", headers=tenant.headers)).status_code == 404

    # Demoting production (its data kept, neutralized) gives it a catcher of its own too.
    response = await api.post(
        f"/api/environments/{production['id']}/promote",
        json={"targetStage": "development", "demotionDbOption": "clone"},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    job = await job_for(api, tenant, production["id"])
    assert job["status"] == "succeeded", (job["error"], [s["output"] for s in job["steps"]])
    demoted = (
        await api.get(f"/api/environments/{production['id']}", headers=tenant.headers)
    ).json()
    ports = mail_ports(
        prod["instance"]["httpPortHost"], settings.instance_port_min, settings.instance_port_max
    )
    assert ports is not None
    assert demoted["mailpitPort"] == ports[0]
    assert demoted["isNeutralized"] is True
    assert _mailpit_pid(base_dir / "instances" / prod["slug"]) is not None
    response = await api.get(
        f"/api/environments/{production['id']}/mail/api/v1/messages", headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["total"] == 0
