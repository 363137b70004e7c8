"""Queued notifications and their delivery through apprise, logged per attempt on the row.

States: ``pending`` (due at ``not_before``) → ``sending`` (claimed by one instance) → ``sent``;
a failed attempt goes back to ``pending`` with ``not_before`` moved by the back-off, and after the
last retry to ``failed``.  A claim older than ``CLAIM_TIMEOUT`` (its instance died) is retried.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import apprise
from sqlalchemy import Connection, Engine, and_, or_, select, update

from headend.db.dialect import insert_ignore
from headend.db.engine import writing
from headend.db.prepay_tables import notifications
from headend.notify import NotifyError
from headend.notify.templates import render

log = logging.getLogger(__name__)
CLAIM_TIMEOUT = timedelta(minutes=5)
Send = Callable[[str, str, str], str | None]  # (url, title, body) → None, or the error


@cache
def _plugins_loaded() -> bool:
    """Load apprise's plugins once, quietly: some import deprecated stdlib modules (imghdr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        apprise.Apprise.instantiate("json://localhost")
    return True


def redact(url: str) -> str:
    """The URL as shown to operators: passwords and tokens hidden by apprise."""
    _plugins_loaded()
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise NotifyError(f"apprise cannot use the URL {url.split(':', 1)[0]}://…")
    return str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]


def apprise_send(url: str, title: str, body: str) -> str | None:
    """Send one message through apprise; None on success, else what apprise logged."""
    _plugins_loaded()
    errors: list[str] = []

    def capture(entry: Any, _plugin: Any) -> None:
        if entry.level in ("WARNING", "ERROR", "CRITICAL"):
            errors.append(str(entry.message))

    sender = apprise.Apprise()
    if not sender.add(url):
        return "apprise cannot use this URL"
    ok = sender.notify(body=body, title=title, log_callback=capture, log_level=logging.WARNING)
    if ok:
        return None
    return "; ".join(errors)[-500:] or "apprise reported a failure"


def queue(
    conn: Connection,
    account: str,
    template: str,
    language: str,
    urls: Sequence[str],
    fields: Mapping[str, Any],
    *,
    dedupe: str,
    not_before: datetime,
    now: datetime,
) -> int:
    """Queue ``template`` to every URL once per ``dedupe`` key; returns how many rows are new."""
    title, body = render(template, language, fields)
    added = 0
    for n, url in enumerate(urls):
        problem: str | None = None
        try:
            target = redact(url)
        except NotifyError as exc:
            target, problem = url.split(":", 1)[0] + "://…", str(exc)
        done = conn.execute(
            insert_ignore(conn, notifications).values(
                account=account,
                dedupe=f"{dedupe}#{n}",
                template=template,
                language=language,
                target=target,
                url=url,
                title=title,
                body=body,
                state="failed" if problem else "pending",
                attempts=0,
                not_before=not_before,
                last_error=problem,
                created_at=now,
            )
        )
        added += done.rowcount or 0
    return added


@dataclass(frozen=True)
class Delivery:
    """What one delivery pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0


def deliver_due(
    engine: Engine,
    now: datetime,
    *,
    retries: int,
    retry_seconds: float,
    send: Send = apprise_send,
    instance: str = "",
    limit: int = 200,
) -> Delivery:
    """Send every due notification (claimed first, so two instances never send one twice)."""
    n = notifications.c
    due = or_(
        and_(n.state == "pending", n.not_before <= now),
        and_(n.state == "sending", n.not_before <= now - CLAIM_TIMEOUT),
    )
    with writing(engine) as conn:
        ids = list(
            conn.execute(
                select(n.id).where(due).order_by(n.not_before, n.id).limit(limit)
            ).scalars()
        )
        claimed = []
        for id_ in ids:
            won = conn.execute(
                update(notifications)
                .where(n.id == id_, due)
                .values(state="sending", not_before=now, attempts=n.attempts + 1)
            )
            if won.rowcount:
                claimed.append(id_)
        rows = conn.execute(select(notifications).where(n.id.in_(claimed))).all() if claimed else []
    sent = retrying = failed = 0
    for row in rows:
        try:
            error = send(row.url, row.title, row.body)
        except Exception as exc:  # a plugin bug must not stop the others
            error = f"{type(exc).__name__}: {exc}"
        with writing(engine) as conn:
            if error is None:
                values: dict[str, Any] = {"state": "sent", "sent_at": now, "last_error": None}
                sent += 1
            elif row.attempts > retries:
                values = {"state": "failed", "last_error": error}
                failed += 1
                log.warning("notification %s to %s failed for good: %s", row.id, row.target, error)
            else:
                back_off = timedelta(seconds=retry_seconds * 2 ** (row.attempts - 1))
                values = {"state": "pending", "not_before": now + back_off, "last_error": error}
                retrying += 1
            conn.execute(
                update(notifications).where(n.id == row.id, n.state == "sending").values(**values)
            )
    return Delivery(sent, retrying, failed)


def of_account(conn: Connection, account: str, limit: int = 200) -> list[dict[str, Any]]:
    """The account's notifications, newest first, with their delivery status (no raw URLs)."""
    rows = conn.execute(
        select(notifications)
        .where(notifications.c.account == account)
        .order_by(notifications.c.id.desc())
        .limit(limit)
    ).all()
    return [{k: v for k, v in dict(r._mapping).items() if k not in ("url", "dedupe")} for r in rows]
