"""Operational endpoints: health, readiness, metrics, and the demo outbox."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select

from idp import metrics
from idp.channels.models import Message
from idp.extensions import db, services
from idp.store import StoreUnavailable
from idp.web.rendering import render

bp = Blueprint("ops", __name__)

# Load balancers' probes commonly give up after 2 s; a database slower than this is not ready.
READINESS_DATABASE_SECONDS = 1.5


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = {}
    # Not the request's session: a probe must answer in time whatever the database does.
    answers = services().database.answers(within=READINESS_DATABASE_SECONDS)
    checks["database"] = "ok" if answers else "unavailable"
    try:
        services().store.ping()
        checks["store"] = "ok"
    except StoreUnavailable:
        checks["store"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def prometheus():
    """Prometheus text exposition; with IDP_METRICS_TOKEN set, only for that bearer token."""
    token = services().settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return jsonify(error="unauthorized"), 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}
    return Response(metrics.exposition(services().database), content_type=CONTENT_TYPE_LATEST)


@bp.get("/_outbox")
def outbox():
    """Every email, SMS and letter the product sent, newest first (demo and development only)."""
    if not services().settings.outbox_page:
        abort(404)
    messages = db().scalars(select(Message).order_by(Message.id.desc()).limit(200)).all()
    return render("outbox.html", messages=messages)


# A message's id is a 32-bit integer: a larger number names none (404, not the database's error).
@bp.get("/_outbox/<int(max=2147483647):message_id>/letter.pdf")
def outbox_letter(message_id: int):
    """A letter of the outbox as the PDF that would be printed (where the outbox page is shown)."""
    if not services().settings.outbox_page:
        abort(404)
    message = db().get(Message, message_id)
    if message is None or message.channel != "letter":
        abort(404)
    from idp.channels.letters import letter_pdf  # noqa: PLC0415 - the PDF library, only when shown

    return Response(letter_pdf(message), content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="letter-{message.id}.pdf"',
        "Cache-Control": "no-store"})
