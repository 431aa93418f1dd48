"""The one error hierarchy of ocore.

Services and the hosts layer raise these; the app turns them into RFC 9457
problem documents. Nothing below the routers raises ``HTTPException``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OcoreError(Exception):
    """Base of every error ocore raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(OcoreError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class InvalidInput(OcoreError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class Unauthorized(OcoreError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(OcoreError):
    status = 403
    code = "forbidden"
    title = "Permission denied"


class NotFound(OcoreError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(OcoreError):
    status = 409
    code = "conflict"
    title = "Conflict"


class ServiceUnavailable(OcoreError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class HostError(OcoreError):
    """Something went wrong on an Odoo host (SSH, a command, a file transfer)."""

    status = 502
    code = "host_error"
    title = "Host operation failed"


class HostUnreachable(HostError):
    code = "host_unreachable"
    title = "Host unreachable"


class HostKeyMismatch(HostError):
    code = "host_key_mismatch"
    title = "Host key changed"


class HostAuthFailed(HostError):
    code = "host_auth_failed"
    title = "Host refused the key"


class CommandFailed(HostError):
    code = "command_failed"
    title = "Host command failed"

    def __init__(self, detail: str, *, exit_status: int | None, output: str = "") -> None:
        super().__init__(detail, exit_status=exit_status)
        self.exit_status = exit_status
        self.output = output


class CommandTimeout(HostError):
    code = "command_timeout"
    title = "Host command timed out"


class HostFileError(HostError):
    """Reading, writing or copying a file on a host failed; ``missing`` if it does not exist."""

    code = "host_file_error"
    title = "Host file operation failed"

    def __init__(self, detail: str, *, path: str, missing: bool = False) -> None:
        super().__init__(detail, path=path)
        self.path = path
        self.missing = missing


# Git: providers (git CLI, GitHub, GitLab) and webhooks.


class GitError(OcoreError):
    """The git provider failed: unreachable, unexpected answer, git command error."""

    status = 502
    code = "git_error"
    title = "Git provider error"


class GitAuthFailed(GitError):
    """The provider refused ocore's credentials (token, deploy key, host key)."""

    code = "git_auth_failed"
    title = "Git provider refused the credentials"


class GitRateLimited(GitError):
    status = 503
    code = "git_rate_limited"
    title = "Git provider rate limit reached"

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class RefNotFound(NotFound):
    """A branch, tag or commit the repository does not have."""

    code = "ref_not_found"
    title = "Git reference not found"


class WebhookSignatureInvalid(Unauthorized):
    code = "invalid_webhook_signature"
    title = "Webhook signature invalid"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"
