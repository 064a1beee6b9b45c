"""Plain-text tables: aligned columns for every listing the CLI prints (no rich on the fast path)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], right: Sequence[int] = ()) -> str:
    """Aligned columns, two spaces apart; columns in `right` are right-aligned."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(values, widths))]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def first_line(text: str | None) -> str:
    """A note in a table cell: its first line, `...` when there is more (--json keeps it whole)."""
    if not text:
        return ""
    first, _, rest = text.strip().partition("\n")
    return first + (" ..." if rest.strip() else "")
