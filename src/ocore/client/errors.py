"""What a client command can fail with: a message for stderr and an exit code."""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DEPLOY_FAILED = 3


class ClientError(Exception):
    """Printed as-is to stderr (no traceback); the process exits with ``exit_code``."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(ClientError):
    exit_code = EXIT_USAGE


class ApiError(ClientError):
    """The API answered with an error (a problem+json document, usually)."""

    def __init__(self, status: int, title: str, detail: str, code: str | None = None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code
        exit_code = EXIT_USAGE if status in (400, 422) else EXIT_FAILURE
        super().__init__(f"{title}: {detail}" if detail else title, exit_code)
