"""Validation of git names and repository URLs before they reach a git command."""

from __future__ import annotations

import re

# git check-ref-format rules, plus a conservative character set: branch names
# end up in commands, paths and hostnames. Always ``fullmatch``: with ``match``,
# ``$`` also matches before a trailing newline, which would let "main\n" through.
_REF_CHARS = re.compile(r"[A-Za-z0-9._/+@-]+")
_SHA = re.compile(r"[0-9a-f]{7,64}")
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+")
_URL = re.compile(r"(https|ssh|git|file)://[A-Za-z0-9._~:/@%+-]+")
_LOCAL_PATH = re.compile(r"/[A-Za-z0-9._/-]+")


def branch_name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable branch or tag name, or None when it is."""
    if not name or len(name) > 200:
        return "must be 1 to 200 characters"
    if not _REF_CHARS.fullmatch(name):
        return "may only contain letters, digits and . _ / + @ -"
    if name.startswith(("-", "/", ".")) or name.endswith(("/", ".", ".lock")):
        return "must not start with '-', '/' or '.', nor end with '/', '.' or '.lock'"
    if ".." in name or "//" in name or "@{" in name or name == "@":
        return "must not contain '..', '//' or '@{'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "no path component may start with '.' or end with '.lock'"
    if name == "HEAD":
        # git itself refuses it as a branch name; as a ref it means whatever is checked out.
        return "must not be 'HEAD'"
    return None


def validate_branch_name(name: str) -> str:
    problem = branch_name_problem(name)
    if problem:
        raise ValueError(f"branch name {problem}")
    return name


def validate_commit_sha(sha: str) -> str:
    if not _SHA.fullmatch(sha):
        raise ValueError("a commit SHA is 7 to 64 lowercase hexadecimal characters")
    return sha


def validate_repository_url(url: str) -> str:
    """An https/ssh/git/file URL, an scp-like ``user@host:path`` or an absolute local path."""
    if url.startswith("-"):
        raise ValueError("a repository URL must not start with '-'")
    if ".." in url.split("://", 1)[-1].split("/"):
        raise ValueError("a repository URL must not contain '..' path segments")
    if url.startswith("file://"):
        # git percent-decodes a file:// URL and ignores its host, so only a plain
        # absolute path after "file://" names the directory that checks of the path see.
        if _LOCAL_PATH.fullmatch(url.removeprefix("file://")):
            return url
        raise ValueError("a file:// URL is file:// and an absolute path, without a host or escapes")
    if _URL.fullmatch(url):
        scheme, rest = url.split("://", 1)
        userinfo = rest.split("/", 1)[0].rpartition("@")[0]
        # URLs are returned by the API and written to logs: a secret in one would leak.
        if (scheme != "ssh" and userinfo) or ":" in userinfo:
            raise ValueError(
                "a repository URL must not carry credentials; set the project's gitToken"
                " (or use an ssh:// URL with a user only)"
            )
        return url
    if _SCP_LIKE.fullmatch(url) or _LOCAL_PATH.fullmatch(url):
        return url
    raise ValueError(
        "use an https://, ssh://, git:// or file:// URL, user@host:path, or an absolute path"
    )


def infer_provider(url: str) -> str:
    host = url.split("://", 1)[-1].split("@", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    if host == "github.com":
        return "github"
    if host == "gitlab.com":
        return "gitlab"
    if url.startswith(("/", "file://")):
        return "local"
    return "ssh"


def validate_tag_name(name: str) -> str:
    """Tags follow the same conservative rules as branches (they reach the same commands)."""
    problem = branch_name_problem(name)
    if problem:
        raise ValueError(f"tag name {problem}")
    return name


def is_null_sha(sha: str) -> bool:
    """The all-zero id git and the forges use for "no commit" (branch created or deleted)."""
    return bool(sha) and set(sha) == {"0"}
