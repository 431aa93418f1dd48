"""Git pushes reaching ocore: provider webhooks, manual builds of pending commits, commit lists."""

from __future__ import annotations

from fastapi import APIRouter

from ocore.core.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["webhooks"], responses=PROBLEM_RESPONSES)
