"""Time limits the member is told about and can extend (WCAG 2.2.1 Timing adjustable).

A page under a limit says in words how long it stays valid. Then idp/static/deadline.js
warns a little before the end, with the way to more time (a longer sign-in, or a new
code), and once the time is out says so, with the way forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# How long before the end the warning comes, when the limit is long enough.
SIGN_IN_WARNING = 120
CODE_WARNING = 60
SESSION_WARNING = 120
# WCAG 2.2.1: the member has at least 20 seconds to act on the warning.
MIN_WARNING = 20


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


@dataclass(frozen=True)
class Deadline:
    seconds_left: int
    # The limit's whole length: what an extension or a new code gives again.
    lifetime: int
    preferred_warning: int

    @property
    def warn_before(self) -> int:
        """The preferred lead, but within the second half of a short limit."""
        return max(MIN_WARNING, min(self.preferred_warning, self.lifetime // 2))

    @property
    def minutes_left(self) -> int:
        return _minutes(self.seconds_left)

    @property
    def lifetime_minutes(self) -> int:
        return _minutes(self.lifetime)

    @property
    def warning_minutes(self) -> int:
        return _minutes(self.warn_before)


def sign_in_deadline(seconds_left: int, lifetime: int) -> Deadline:
    return Deadline(max(0, seconds_left), lifetime, SIGN_IN_WARNING)


def code_deadline(seconds_left: float, lifetime: int) -> Deadline:
    return Deadline(max(0, int(seconds_left)), lifetime, CODE_WARNING)


def session_deadline(seconds_left: int, lifetime: int) -> Deadline:
    return Deadline(max(0, seconds_left), lifetime, SESSION_WARNING)
