"""The ``ocore`` command as a user runs it: a real process, a real port, the embedded default."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.nginx import running_nginx

OCORE = [sys.executable, "-m", "ocore.cli"]
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def run_ocore(
    data_dir: Path, *args: str, check: bool = True, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCORE_")}
    env.update({"OCORE_DATA_DIR": str(data_dir), "COLUMNS": "200", **(settings or {})})
    result = subprocess.run(
        [*OCORE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`ocore serve` on a fresh data directory: base URL, the printed token, data dir."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCORE_")}
    env.update({"OCORE_DATA_DIR": str(tmp_path), "COLUMNS": "200"})
    process = subprocess.Popen(
        [*OCORE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    output = ""
    try:
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output += line
            if "API docs" in line:
                break
        token_match = JWT.search(output)
        assert token_match, output
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/api/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base, token_match.group(0), tmp_path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_on_a_fresh_machine(served: tuple[str, str, Path]) -> None:
    base, token, data_dir = served
    assert (data_dir / "ocore.db").exists()
    docs = httpx.get(f"{base}/api/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    response = httpx.get(f"{base}/api/projects", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["total"] == 0
    assert httpx.get(f"{base}/api/projects").status_code == 401
    ready = httpx.get(f"{base}/api/ready").json()
    assert ready == {"status": "ready", "database": "sqlite", "queue": "in-process"}


def test_restart_keeps_data_and_tokens(tmp_path: Path) -> None:
    bootstrap = run_ocore(tmp_path, "admin", "bootstrap", "--email", "ops@acme.test")
    token = JWT.search(bootstrap.stdout)
    assert token
    second = run_ocore(tmp_path, "admin", "bootstrap", check=False)
    assert second.returncode == 1
    assert "already has an organization" in second.stderr
    assert "Traceback" not in second.stderr


def test_token_create_and_revoke_reach_the_api(served: tuple[str, str, Path]) -> None:
    base, _, data_dir = served
    run_ocore(data_dir, "admin", "add-user", "dev@acme.test", "--role", "developer")
    created = run_ocore(
        data_dir, "token", "create", "--email", "dev@acme.test", "--ttl", "2h", "--name", "ci"
    )
    token = JWT.search(created.stdout)
    assert token
    jti = re.search(r"token id \(jti\): ([0-9a-f-]{36})", created.stderr)
    assert jti, created.stderr
    too_high = run_ocore(
        data_dir, "token", "create", "--email", "dev@acme.test", "--role", "owner", check=False
    )
    assert too_high.returncode == 1
    assert "cannot hold a token" in too_high.stderr

    headers = {"Authorization": f"Bearer {token.group(0)}"}
    assert httpx.get(f"{base}/api/projects", headers=headers).status_code == 200
    forbidden = httpx.post(
        f"{base}/api/projects",
        json={"name": "x", "repositoryUrl": "/srv/x.git", "odooVersion": "17.0"},
        headers=headers,
    )
    assert forbidden.status_code == 403
    run_ocore(data_dir, "token", "revoke", jti.group(1))
    assert httpx.get(f"{base}/api/projects", headers=headers).status_code == 401
    listing = run_ocore(data_dir, "token", "list")
    assert jti.group(1) in listing.stdout
    assert token.group(0) not in listing.stdout


def test_bad_duration_is_a_clear_error(tmp_path: Path) -> None:
    result = run_ocore(tmp_path, "token", "create", "--ttl", "forever", check=False)
    assert result.returncode == 2
    assert "30m, 12h, 90d" in result.stderr


def test_share_gateway_config_for_nginx(tmp_path: Path) -> None:
    missing = run_ocore(tmp_path, "share-gateway", "nginx-config", check=False)
    assert missing.returncode == 1
    assert "OCORE_SHARE_GATEWAY_TOKEN" in missing.stderr

    token = "t" * 43
    settings = {"OCORE_SHARE_GATEWAY_TOKEN": token, "OCORE_PUBLIC_URL": "https://ocore.example"}
    refused = run_ocore(
        tmp_path,
        "share-gateway",
        "nginx-config",
        "--listen",
        "80; x",
        settings=settings,
        check=False,
    )
    assert refused.returncode == 1
    assert "Unusable listen" in refused.stderr
    for option, value, message in (
        ("--static-cache-seconds", "-1", "Unusable static cache time"),
        ("--cache-dir", "/tmp/x; include /etc/shadow", "Unusable cache directory"),
        ("--cache-dir", "relative/dir", "Unusable cache directory"),
    ):
        refused = run_ocore(
            tmp_path, "share-gateway", "nginx-config", option, value, settings=settings, check=False
        )
        assert refused.returncode == 1, refused.stderr
        assert message in refused.stderr

    with running_nginx(lua=True) as nginx:
        output = nginx.sites / "ocore.conf"
        run_ocore(
            tmp_path,
            "share-gateway",
            "nginx-config",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--cache-dir",
            str(nginx.prefix / "share-cache"),
            "--output",
            str(output),
            settings=settings,
        )
        assert output.stat().st_mode & 0o777 == 0o600
        text = output.read_text()
        assert "server_name ocore.example;" in text
        assert f'"{token}"' in text
        assert "proxy_cache_valid 200 60s;" in text
        assert not re.search(r"@[A-Z_]+@", text), "a placeholder was left unfilled"
        nginx.check_config()
