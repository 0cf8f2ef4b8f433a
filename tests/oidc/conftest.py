"""Fixtures and helpers for the protocol tests (shared with the journeys)."""

from tests.flows import Flow, csrf_token, last_code, pkce_pair, query  # noqa: F401
