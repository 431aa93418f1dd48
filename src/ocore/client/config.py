"""Saved connection profiles (``ocore login``) and how a command picks its URL and token.

The file is ``$OCORE_CONFIG`` or ``$XDG_CONFIG_HOME/ocore/config.toml`` (default
``~/.config/ocore/config.toml``), written with mode 0600 because it holds tokens::

    default = "default"

    [profiles.default]
    url = "https://ocore.example.com"
    token = "eyJ..."
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocore.client.errors import ClientError, UsageError

DEFAULT_PROFILE = "default"


def config_path() -> Path:
    explicit = os.environ.get("OCORE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "ocore" / "config.toml"


def normalize_url(url: str) -> str:
    """``https://host``, ``https://host/`` and ``https://host/api`` all mean the same server."""
    url = url.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"'{url}' is not an http(s) URL (e.g. https://ocore.example.com).")
    return url


@dataclass(frozen=True)
class Profile:
    name: str
    url: str
    token: str | None


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClientError(f"Cannot read the ocore config {path}: {exc}") from None


def load_profile(name: str | None) -> Profile | None:
    """The named profile, else the default one; None when there is no config file."""
    data = _read(config_path())
    profiles = data.get("profiles", {})
    wanted = name or str(data.get("default") or DEFAULT_PROFILE)
    entry = profiles.get(wanted)
    if entry is None:
        if name:
            raise UsageError(f"No profile '{name}' in {config_path()}; run 'ocore login'.")
        return None
    return Profile(name=wanted, url=str(entry.get("url", "")), token=entry.get("token"))


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def save_profile(profile: Profile, *, make_default: bool) -> Path:
    path = config_path()
    data = _read(path)
    profiles: dict[str, dict[str, Any]] = dict(data.get("profiles", {}))
    entry = {"url": profile.url}
    if profile.token:
        entry["token"] = profile.token
    profiles[profile.name] = entry
    default = profile.name if make_default or "default" not in data else str(data["default"])
    lines = [f"default = {_toml_string(default)}", ""]
    for name, values in sorted(profiles.items()):
        lines.append(f"[profiles.{_toml_string(name)}]")
        lines += [f"{key} = {_toml_string(str(v))}" for key, v in values.items()]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 and forced to 0600: the file holds bearer tokens.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write("\n".join(lines))
    return path


@dataclass(frozen=True)
class Connection:
    url: str
    token: str | None
    source: str


def resolve(url: str | None, token: str | None, profile_name: str | None) -> Connection:
    """--url/OCORE_URL and --token/OCORE_TOKEN win over the profile.

    A profile's token is only sent to that profile's own URL, never to another server.
    """
    profile = load_profile(profile_name) if (profile_name or not url or not token) else None
    if url:
        chosen = normalize_url(url)
        source = "--url/OCORE_URL"
        if token is None and profile and profile.url and normalize_url(profile.url) == chosen:
            token = profile.token
    elif profile and profile.url:
        chosen = normalize_url(profile.url)
        source = f"profile '{profile.name}'"
        token = token if token is not None else profile.token
    else:
        raise UsageError(
            "No ocore URL: pass --url, set OCORE_URL, or run 'ocore login --url … --token …'."
        )
    return Connection(url=chosen, token=token or None, source=source)
