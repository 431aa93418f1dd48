"""The servers API: private keys are write-only and encrypted at rest."""

from __future__ import annotations

import asyncssh
import pytest
from sqlalchemy import func, select

from ocore.core.crypto import SecretBox
from ocore.core.db import Database
from ocore.instances.models import Instance
from ocore.servers.models import Server
from ocore.settings import Settings
from tests.conftest import Tenant


@pytest.fixture(scope="module")
def private_key() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return bytes(key.export_private_key("openssh")).decode()


def server_body(private_key: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "odoo-1",
        "host": "odoo-1.example.net",
        "port": 2222,
        "username": "odoo",
        "privateKey": private_key,
        "runtime": "native",
    }
    body.update(overrides)
    return body


async def count_servers(database: Database) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Server)) or 0)


async def test_private_key_is_write_only_and_encrypted(
    client, tenant: Tenant, database: Database, settings: Settings, private_key: str
) -> None:
    response = await client.post(
        "/api/servers",
        json=server_body(private_key, dbPassword="pg-s3cret-value", dbUser="odoo17"),
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    server = response.json()
    assert server["hasPrivateKey"] is True
    assert server["hasDbPassword"] is True
    assert server["dbUser"] == "odoo17"
    assert server["dbHost"] == "127.0.0.1"
    assert server["hostKeyFingerprint"] is None
    assert server["status"] == "unknown"
    key_body = private_key.splitlines()[1]
    for text in (
        response.text,
        (await client.get(f"/api/servers/{server['id']}", headers=tenant.headers)).text,
        (await client.get("/api/servers", headers=tenant.headers)).text,
    ):
        assert "PRIVATE KEY" not in text
        assert key_body not in text
        assert "pg-s3cret-value" not in text
        assert "privateKey" not in text

    async with database.sessionmaker() as session:
        row = await session.get(Server, server["id"])
        assert row is not None
        assert row.private_key_encrypted is not None
    assert key_body not in row.private_key_encrypted
    stored = SecretBox(settings.effective_secret_key).decrypt(row.private_key_encrypted)
    assert (
        asyncssh.import_private_key(stored).get_fingerprint()
        == asyncssh.import_private_key(private_key).get_fingerprint()
    )


async def test_passphrase_protected_key(client, tenant: Tenant) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    encrypted = bytes(key.export_private_key("openssh", passphrase="hunter22")).decode()
    response = await client.post(
        "/api/servers", json=server_body(encrypted), headers=tenant.headers
    )
    assert response.status_code == 422
    assert "privateKey" in response.json()["detail"]
    response = await client.post(
        "/api/servers",
        json=server_body(encrypted, privateKeyPassphrase="hunter22"),
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    assert "hunter22" not in response.text


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"}, "privateKey"),
        ({"privateKey": None}, "body"),
        ({"host": "odoo; rm -rf /"}, "body.host"),
        ({"host": "-oProxyCommand=touch /tmp/x"}, "body.host"),
        ({"username": "root$(id)"}, "body.username"),
        ({"port": 70000}, "body.port"),
        ({"runtime": "kubernetes"}, "body.runtime"),
        ({"baseDir": "relative/path"}, "body.baseDir"),
        ({"baseDir": "/opt/../etc"}, "body.baseDir"),
        ({"hostKey": "ssh-ed25519 AAAA"}, "body.hostKey"),
        ({"dbUser": "odoo; DROP ROLE x"}, "body.dbUser"),
        ({"dbHost": "$(reboot)"}, "body.dbHost"),
    ],
)
async def test_bad_input_is_422_and_writes_nothing(
    client, tenant: Tenant, database: Database, private_key: str, overrides, location
) -> None:
    response = await client.post(
        "/api/servers", json=server_body(private_key, **overrides), headers=tenant.headers
    )
    assert response.status_code == 422, response.text
    assert location in response.json()["detail"]
    assert await count_servers(database) == 0


async def test_local_server_needs_no_key(client, tenant: Tenant) -> None:
    response = await client.post(
        "/api/servers", json={"name": "here", "isLocal": True}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["host"] == "localhost"
    assert response.json()["hasPrivateKey"] is False


async def test_update_host_forgets_the_pinned_key(
    client, tenant: Tenant, database: Database, private_key: str
) -> None:
    server = (
        await client.post("/api/servers", json=server_body(private_key), headers=tenant.headers)
    ).json()
    async with database.sessionmaker() as session:
        row = await session.get(Server, server["id"])
        assert row is not None
        row.host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld"
        row.host_key_fingerprint = "SHA256:old"
        await session.commit()
    fetched = (await client.get(f"/api/servers/{server['id']}", headers=tenant.headers)).json()
    assert fetched["hostKeyFingerprint"] == "SHA256:old"
    response = await client.put(
        f"/api/servers/{server['id']}", json={"runtime": "docker"}, headers=tenant.headers
    )
    assert response.json()["hostKeyFingerprint"] == "SHA256:old"
    response = await client.put(
        f"/api/servers/{server['id']}", json={"host": "10.0.0.7"}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["host"] == "10.0.0.7"
    assert response.json()["hostKeyFingerprint"] is None
    assert response.json()["runtime"] == "docker"


async def test_delete_refuses_while_instances_remain(
    client, tenant: Tenant, database: Database, private_key: str
) -> None:
    server = (
        await client.post("/api/servers", json=server_body(private_key), headers=tenant.headers)
    ).json()
    async with database.sessionmaker() as session:
        instance = Instance(
            organization_id=tenant.organization_id,
            server_id=server["id"],
            name="shop",
            slug="shop",
            odoo_version="17.0",
            database_name="shop",
        )
        session.add(instance)
        await session.commit()
    response = await client.delete(f"/api/servers/{server['id']}", headers=tenant.headers)
    assert response.status_code == 409
    assert "1 instance" in response.json()["detail"]
    async with database.sessionmaker() as session:
        await session.delete(await session.get(Instance, instance.id))
        await session.commit()
    response = await client.delete(f"/api/servers/{server['id']}", headers=tenant.headers)
    assert response.status_code == 204
    assert await count_servers(database) == 0


async def test_duplicate_name(client, tenant: Tenant, other_tenant: Tenant, private_key) -> None:
    body = server_body(private_key)
    assert (await client.post("/api/servers", json=body, headers=tenant.headers)).status_code == 201
    assert (await client.post("/api/servers", json=body, headers=tenant.headers)).status_code == 409
    # Names are per organization.
    response = await client.post("/api/servers", json=body, headers=other_tenant.headers)
    assert response.status_code == 201
