"""Close-match suggestions for a mistyped name ("did you mean ...?"): one rule for groups, policies, runs."""
from __future__ import annotations

from collections.abc import Iterable


def close_matches(name: object, names: Iterable[str], n: int = 1) -> list[str]:
    """The names closest to `name`, best first: a case slip first, then difflib's ratio >= 0.6."""
    if not isinstance(name, str):
        return []
    candidates = list(names)
    folded = {c.lower(): c for c in candidates}
    if name.lower() in folded:  # a case slip is the likeliest typo
        return [folded[name.lower()]]
    import difflib  # only on the error path: keeps loading fast

    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)


def did_you_mean(name: object, names: Iterable[str], n: int = 1) -> str | None:
    """'did you mean 'x'?' (or 'x' or 'y'), or None when nothing is close."""
    matches = close_matches(name, names, n)
    return "did you mean " + " or ".join(map(repr, matches)) + "?" if matches else None
