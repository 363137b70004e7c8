"""Rows of dicts as a CSV download: columns in order of first appearance, nested values as JSON,
cells escaped against formula injection (``headend.csvcells``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from fastapi.responses import Response

from headend import csvcells
from headend.api.bounds import attachment


def csv_response(rows: Sequence[dict[str, Any]], name: str) -> Response:
    buf = io.StringIO()
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                k: csvcells.escape(
                    json.dumps(v, default=str, ensure_ascii=False)
                    if isinstance(v, list | dict)
                    else v
                )
                for k, v in r.items()
            }
        )
    headers = {"Content-Disposition": attachment(f"{name}.csv")}
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
