"""Conditions that end a page's work, whoever raises them; ``idp.web.errors`` answers them."""

from __future__ import annotations


class SignInExpired(Exception):
    """The sign-in this page belongs to is gone (timed out, finished in another tab, or never
    was this browser's): the member starts again from their portal or the sign-in page. A
    browser signed in to the tenant (the Back button after signing in) is told so instead."""
