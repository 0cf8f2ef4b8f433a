"""How a member's own address and number are shown back to them: recognisable, not learnable."""

from __future__ import annotations

import phonenumbers


def mask_email(email: str) -> str:
    """j••••@example.org."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'•' * 4}@{domain}"


def mask_phone(e164: str) -> str:
    """+33 6 •• •• •• 88: enough to recognise one's number, not enough to learn it. Its groups
    are joined by no-break spaces (U+00A0): a narrow screen never splits the number."""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return "•" * 6
    groups = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL).split()
    masked = [groups[0], groups[1]] + ["••" for _ in groups[2:-1]] + [groups[-1]]
    return "\u00a0".join(masked if len(groups) > 3 else [*groups[:1], "••••"])
