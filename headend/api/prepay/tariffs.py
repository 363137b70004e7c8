"""``/prepay/tariffs``: tariff versions (admins add, everyone reads)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from headend.api.prepay.common import (
    Admin,
    Id,
    TariffIn,
    Viewer,
    aware,
)
from headend.auth.deps import ops_of
from headend.auth.http import http_errors
from headend.db import reading, writing
from headend.prepay import store

router = APIRouter()


@router.get("/tariffs")
def list_tariffs(request: Request, user: Viewer) -> list[dict[str, Any]]:
    """Every tariff version."""
    with reading(ops_of(request).engine) as conn:
        return store.tariffs(conn)


@router.post("/tariffs/{tariff_id}", status_code=201)
def add_tariff(request: Request, tariff_id: Id, body: TariffIn, user: Admin) -> dict[str, Any]:
    """Add a tariff version in force from ``valid_from`` (not in the past, except the first)."""
    ops = ops_of(request)
    with http_errors():
        aware(body.valid_from, "valid_from")
        with writing(ops.engine) as conn:
            store.put_tariff(
                conn,
                tariff_id,
                body.definition,
                body.valid_from,
                name=body.name,
                actor=user.name,
                now=ops.clock.now(),
            )
    return {"id": tariff_id, "valid_from": body.valid_from}
