"""The public side of share links: no JWT, only the link's token and its session cookie."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["shares"])
