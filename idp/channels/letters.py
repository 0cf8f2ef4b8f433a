"""A letter message as the PDF that is printed and posted: A4, French window envelope.

The layout follows La Poste's norm for DL and C5 envelopes with a window on the
right: the address block sits 110 mm from the left edge and 50 mm from the top, in
an area of 100 × 45 mm that the window shows once the sheet is folded in three
(the fold marks are at 99 and 198 mm). The brand's name is at the top left, the
place and date on the right under the window, then the subject, the body, and a
footer with the brand and the page number.

The message's text is laid out as ``Messages.queue`` renders it from
``templates/letter/layout.txt``: its first paragraph is the sender (the brand), its
second the place and date, the rest the body; a body line indented by four spaces
(a one-time code) is printed large, in a monospace font, with its characters spaced.
The recipient is the window's lines (``idp.registry.postal``), one per line.

The PDF uses the standard PDF fonts (Helvetica, Courier): nothing is embedded, and
every viewer and printer has them. They cover Latin-1; the few characters of French
text beyond it (’, Œ, –, …) are written with their plain equivalents. The document
is deterministic: its dates are the message's, so the same message always gives the
same bytes.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from fpdf import FPDF

from idp.channels.models import Message

PAGE_WIDTH = 210  # mm, A4
PAGE_HEIGHT = 297
MARGIN = 20
# The envelope window (DL/C5, window on the right): where the address block is printed.
WINDOW_LEFT = 110
WINDOW_TOP = 50
WINDOW_WIDTH = 90
WINDOW_HEIGHT = 45
FOLDS = (99, 198)  # mm from the top: three equal panels for a DL envelope
BODY_TOP = 112
CODE_INDENT = "    "

# Beyond Latin-1, what the standard fonts cannot show: French typography's usual characters.
_LATIN1 = str.maketrans({
    "’": "'", "‘": "'", "‚": ",", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-", "‑": "-",
    "…": "...", "€": "EUR", "Œ": "OE", "œ": "oe", "\u202f": "\u00a0", "\u2009": " ",
    "•": "-", "Ÿ": "Y", "Ł": "L", "ł": "l", "Đ": "D", "đ": "d",
})


def printable(text: str) -> str:
    """``text`` in the standard fonts' Latin-1: the usual typography mapped, accents
    dropped from other letters, anything else a question mark."""
    text = text.translate(_LATIN1)
    if all(ord(char) < 256 for char in text):
        return text
    result = []
    for char in text:
        if ord(char) < 256:
            result.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        result.append(base if base and all(ord(c) < 256 for c in base) else "?")
    return "".join(result)


class _Letter(FPDF):
    def __init__(self, footer: str):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("helvetica", size=8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, f"{self.footer_text}  -  {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def letter_pdf(message: Message) -> bytes:
    """The PDF of a letter message (channel "letter"), the same bytes for the same message."""
    sender, _, rest = message.body_text.strip("\n").partition("\n\n")
    dateline, _, body = rest.partition("\n\n")
    sender_lines = [printable(line) for line in sender.splitlines()]
    moment = (message.created_at or datetime(2000, 1, 1)).replace(tzinfo=UTC)

    pdf = _Letter(footer=" - ".join(sender_lines))
    pdf.set_creation_date(moment)
    pdf.set_title(printable(message.subject or ""))
    pdf.set_author(sender_lines[0] if sender_lines else "")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=25)
    pdf.add_page()

    _fold_marks(pdf)
    _sender(pdf, sender_lines)
    _address(pdf, message.recipient.split("\n"))
    pdf.set_xy(WINDOW_LEFT, WINDOW_TOP + WINDOW_HEIGHT + 5)
    pdf.set_font("helvetica", size=10)
    pdf.multi_cell(WINDOW_WIDTH, 5, printable(dateline.strip()))
    if message.subject:
        pdf.set_xy(MARGIN, BODY_TOP)
        pdf.set_font("helvetica", style="B", size=11)
        pdf.multi_cell(0, 6, printable(message.subject))
        pdf.ln(4)
    else:
        pdf.set_xy(MARGIN, BODY_TOP)
    _body(pdf, body)
    return bytes(pdf.output())


def _fold_marks(pdf: FPDF) -> None:
    pdf.set_draw_color(150, 150, 150)
    pdf.set_line_width(0.2)
    for y in FOLDS:
        pdf.line(4, y, 9, y)
    pdf.set_draw_color(0, 0, 0)


def _sender(pdf: FPDF, lines: list[str]) -> None:
    pdf.set_xy(MARGIN, MARGIN)
    for index, line in enumerate(lines):
        if index == 0:
            pdf.set_font("helvetica", style="B", size=16)
            pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.set_font("helvetica", size=10)
            pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")


def _address(pdf: FPDF, lines: list[str]) -> None:
    # Vertically centred in the window, whatever the number of lines (2 to 6).
    line_height = 5
    top = WINDOW_TOP + (WINDOW_HEIGHT - line_height * len(lines)) / 2
    pdf.set_font("helvetica", size=10)
    for index, line in enumerate(lines):
        pdf.set_xy(WINDOW_LEFT + 5, top + index * line_height)
        pdf.cell(WINDOW_WIDTH - 10, line_height, printable(line))


def _body(pdf: FPDF, body: str) -> None:
    for line in body.split("\n"):
        if line.startswith(CODE_INDENT) and line.strip():
            _display(pdf, line.strip())
        elif not line.strip():
            pdf.ln(3)
        else:
            pdf.set_font("helvetica", size=11)
            pdf.multi_cell(0, 5.5, printable(line), align="L", new_x="LMARGIN", new_y="NEXT")


def _display(pdf: FPDF, text: str) -> None:
    """A code to type: large, monospace, spaced, framed, centred."""
    pdf.ln(2)
    pdf.set_font("courier", style="B", size=22)
    pdf.set_char_spacing(3)
    width = pdf.get_string_width(printable(text)) + 16
    pdf.set_x((PAGE_WIDTH - width) / 2)
    pdf.set_line_width(0.4)
    pdf.cell(width, 14, printable(text), border=1, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_char_spacing(0)
    pdf.ln(3)
