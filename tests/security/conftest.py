"""Fixtures of the security tests besides the suite's own: the API guard over a world of
real resources, the share tests' environment behind a recording upstream, and the
deployment tests' real host (sshd, nginx, stand-in Odoo)."""

from tests.deployments.conftest import base_dir, nginx, sshd
from tests.security.guard import guard
from tests.shares.conftest import anonymous, make_shared_env

__all__ = ["anonymous", "base_dir", "guard", "make_shared_env", "nginx", "sshd"]
