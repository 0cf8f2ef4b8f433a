"""Frames: a text rendered once with marks in place of some of its values, then filled with each
use's values (``idp.web.rendering.framed`` for pages, ``idp.channels`` for a code's messages).

A mark is a value's name between two characters of Unicode's private use area, which no template
writes and neither escaping nor a template's text changes. A template that does more with a
value than write it (cuts it, changes its case, puts it in a URL) alters its mark: ``Frame.of``
refuses the text, so that a frame is always the text the template would have rendered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from markupsafe import escape

_MARK = "\ue000{}\ue001"
_MARKS = re.compile("\ue000([^\ue001]*)\ue001")
# A mark gone through a URL's encoding, or cut: a value a template did more with than write it.
_ALTERED_MARKS = ("\ue000", "\ue001", "%EE%80%80", "%EE%80%81")


def marks(names: Iterable[str]) -> dict[str, str]:
    """The mark of each value of ``names``: what the template is given in its place."""
    return {name: _MARK.format(name) for name in names}


@dataclass(frozen=True)
class Frame:
    """A text around the places of its values: ``parts`` alternates the text and the names of
    the values, from the text."""

    parts: tuple[str, ...]

    @classmethod
    def of(cls, text: str, names: Mapping[str, str]) -> Frame:
        """The frame of ``text``, rendered with the marks of ``names`` (``marks``)."""
        parts = tuple(_MARKS.split(text))
        markup, places = parts[0::2], set(parts[1::2])
        if not places <= names.keys() or any(mark in part for part in markup for mark in _ALTERED_MARKS):
            raise ValueError("a framed text's value is not written as it is given")
        return cls(parts)

    def fill(self, values: Mapping[str, str], *, escaped: bool = True) -> str:
        """The text with ``values``: each escaped as an HTML template escapes what it writes, or,
        ``escaped=False``, as it is (a text template's)."""
        parts = list(self.parts)
        parts[1::2] = [escape(values[name]) if escaped else values[name] for name in self.parts[1::2]]
        return "".join(parts)
