"""Operational endpoints: health, readiness, and the demo outbox."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify
from sqlalchemy import select, text

from idp.channels.models import Message
from idp.extensions import db, services
from idp.store import StoreUnavailable
from idp.web import render

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = {}
    try:
        db().execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unavailable"
    try:
        services().store.ping()
        checks["store"] = "ok"
    except StoreUnavailable:
        checks["store"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503


@bp.get("/_outbox")
def outbox():
    """Every email and SMS the product sent, newest first (demo and development only)."""
    if not services().settings.outbox_page:
        abort(404)
    messages = db().scalars(select(Message).order_by(Message.id.desc()).limit(200)).all()
    return render("outbox.html", messages=messages)
