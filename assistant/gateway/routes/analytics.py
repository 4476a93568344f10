"""``GET /v1/admin/analytics``: the IT team's numbers and content gaps (admins only).

The report comes from ``assistant.analytics.service``; it reads SQLite and may embed questions, so
it runs in a worker thread."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse

from assistant.analytics.export import TABLES, figures, tables, to_csv
from assistant.errors import APIError
from assistant.gateway.deps import AnalyticsDep, require_admin_key

router = APIRouter(prefix="/v1/admin", dependencies=[Depends(require_admin_key)])


@router.get("/analytics")
async def analytics(
    service: AnalyticsDep,
    first: str | None = Query(None, alias="from", description="First day, YYYY-MM-DD."),
    last: str | None = Query(None, alias="to", description="Last day (included) [today]."),
    format: str = Query("json", description="json, or csv (one table, see 'table')."),
    table: str = Query("summary", description="With format=csv: " + ", ".join(TABLES) + "."),
    clusters: int = Query(20, description="Content-gap clusters listed, largest first."),
):
    """Counts per day, grounded share, ratings, escalations, deflection rate, top sources
    and content-gap clusters for the days ``from`` to ``to`` (default: the last 7 days);
    in JSON also ``figures``, the data of each plot (``analytics_export.figures``)."""
    if format not in ("json", "csv"):
        raise APIError(400, "'format' must be json or csv")
    if table not in TABLES:
        raise APIError(400, f"'table' must be one of {', '.join(TABLES)}")
    report = await asyncio.to_thread(service.report, first, last, clusters)
    if format == "json":
        return {**report, "figures": figures(report)}  # what the admin tab plots
    name = f"analytics-{table}-{report['from']}-{report['to']}.csv"
    return PlainTextResponse(
        to_csv(tables(report)[table]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
