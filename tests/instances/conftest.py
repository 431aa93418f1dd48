from tests.deployments.conftest import base_dir, nginx, sshd

__all__ = ["base_dir", "nginx", "sshd"]
