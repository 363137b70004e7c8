"""``/api/v1/vee``: the validation queue (readings held by a rule), operators' decisions, and the
contract capacities the plausible-maximum rule uses.

Roles: viewers read the queue (their areas' meters only); operators accept, correct or reject a
held reading with a reason (audited; charging picks the decision up on its next pass); admins set
a point's contract capacity.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from headend.api.bounds import RowId
from headend.auth.deps import current_user, ops_of, require_role
from headend.auth.http import http_errors
from headend.auth.roles import Role, User
from headend.db import reading, writing
from headend.db.tables import meters
from headend.vee import store

router = APIRouter(prefix="/vee", tags=["validation"])
Viewer = Annotated[User, Depends(current_user)]
Operator = Annotated[User, Depends(require_role(Role.OPERATOR))]
Admin = Annotated[User, Depends(require_role(Role.ADMIN))]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9:_.-]+$")]
Number = Annotated[str, Field(pattern=r"^\d{1,10}(\.\d{1,6})?$", description="decimal text")]
STATES = Literal["open", "accepted", "corrected", "rejected", "cleared"]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "correct", "reject"]
    reason: str = Field(min_length=1, max_length=1000)
    value: Number | None = None  # the corrected register value (correct only)


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contract_kva: Number | None = None
    max_kw: Number | None = None


@router.get("/flags")
def list_flags(
    request: Request,
    user: Viewer,
    state: STATES | None = "open",
    meter: Annotated[str | None, Query(max_length=32)] = None,
    after: RowId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Held readings by id (keyset pages), with the rule, the reference and any decision."""
    with reading(ops_of(request).engine) as conn:
        rows = store.queue(
            conn, state=state, meter=meter, areas=user.areas, after=after, limit=limit
        )
    return {"items": rows, "next": rows[-1]["id"] if len(rows) == limit else None}


@router.post("/flags/{flag_id}/decision")
def decide(request: Request, flag_id: RowId, body: DecisionIn, user: Operator) -> dict[str, Any]:
    """Accept, correct or reject a held reading, with the reason (audited)."""
    ops = ops_of(request)
    with writing(ops.engine) as conn, http_errors():
        row = store.flag(conn, flag_id)
        area = (
            conn.execute(
                select(meters.c.area).where(meters.c.id == row.meter).order_by(meters.c.valid_from)
            )
            .scalars()
            .all()
        )
        user.require_areas(area[-1:] or [None])
        done = store.resolve(
            conn,
            flag_id,
            body.decision,
            reason=body.reason,
            value=body.value,
            actor=user.name,
            now=ops.clock.now(),
        )
    return dict(done._mapping)


@router.put("/limits/{point}")
def set_limits(request: Request, point: Id, body: LimitsIn, user: Admin) -> dict[str, Any]:
    """A point's contract capacity (kVA) and/or maximum power (kW), primary side (audited)."""
    ops = ops_of(request)
    kva = Decimal(body.contract_kva) if body.contract_kva is not None else None
    kw = Decimal(body.max_kw) if body.max_kw is not None else None
    with writing(ops.engine) as conn, http_errors():
        store.set_contract(
            conn, point, contract_kva=kva, max_kw=kw, actor=user.name, now=ops.clock.now()
        )
        got = store.contract(conn, point)
    return {
        "point": point,
        "contract_kva": None if got[0] is None else str(got[0]),
        "max_kw": None if got[1] is None else str(got[1]),
    }
