from tests.deployments.conftest import api, base_dir, live, nginx, repo, sshd

__all__ = ["api", "base_dir", "live", "nginx", "repo", "sshd"]
