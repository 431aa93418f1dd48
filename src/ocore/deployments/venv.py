"""A colour's Python: the Odoo version's shared venv, plus the project's ``requirements.txt``.

Each colour that runs deployed code gets ``<colour>/venv``, built by the
deploy (and the rollback) that checks the code out. It is layered on the
version's shared venv with a ``.pth`` file (``site.addsitedir``, so the
shared venv's own ``.pth`` entries work too): Odoo's dependencies are not
installed again, and what the project pins goes into the colour's venv,
ahead of the shared one on ``sys.path``. Blue and green never share one, so
a deploy that changes requirements cannot touch the colour still serving.
"""

from __future__ import annotations

import posixpath

from ocore.deployments.steps import StepFailed, StepLog
from ocore.hosts.runtime import Colour
from ocore.instances.hosting import Hosting

REQUIREMENTS = "requirements.txt"
PIP_TIMEOUT = 1800
_PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


async def build_colour_venv(hosting: Hosting, colour: Colour, step: StepLog) -> str:
    """(Re)build the colour's venv for the code checked out there; returns its python.

    Rebuilt from nothing each time, so a retried or repeated build ends the same.
    """
    host, layout = hosting.host, hosting.layout
    shared_python = layout.python(hosting.instance.odoo_version)
    venv = layout.colour_venv(colour)
    python = layout.colour_python(colour)
    await host.run(["rm", "-rf", "--", venv])
    await host.run([shared_python, "-m", "venv", "--without-pip", venv], timeout=300)
    shared_site = (await host.run([shared_python, "-c", _PURELIB])).stdout.strip()
    own_site = (await host.run([python, "-c", _PURELIB])).stdout.strip()
    layer = f"import site; site.addsitedir({shared_site!r})\n"
    await host.write_file(posixpath.join(own_site, "ocore_shared.pth"), layer.encode(), mode=0o644)

    checkout = layout.addons_dir(colour)
    requirements = posixpath.join(checkout, REQUIREMENTS)
    if not (await host.run(["test", "-f", requirements], check=False)).ok:
        await step.log(f"no {REQUIREMENTS}: Odoo's own packages only")
        return python
    argv = [
        shared_python,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "-r",
        requirements,
    ]
    await step.log(f"$ pip install -r {REQUIREMENTS}")
    # Relative paths in requirements.txt (a vendored wheel) are relative to the checkout.
    result = await host.run(argv, check=False, timeout=PIP_TIMEOUT, cwd=checkout)
    for line in (result.stdout + result.stderr).splitlines()[-80:]:
        await step.log(line)
    if not result.ok:
        raise StepFailed(f"pip could not install {REQUIREMENTS}; see the build step's output.")
    return python
