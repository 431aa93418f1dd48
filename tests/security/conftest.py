"""Fixtures of the security tests besides the suite's own: the API guard over a world of
real resources, and the share tests' environment behind a recording upstream."""

from tests.security.guard import guard
from tests.shares.conftest import anonymous, make_shared_env

__all__ = ["anonymous", "guard", "make_shared_env"]
