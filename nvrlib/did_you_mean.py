"""A hint for a misspelt config key: the closest allowed key, or the list of allowed keys."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Past this many allowed keys a hint lists none of them (the top level of the hub's file).
MAX_LISTED = 16


def did_you_mean(key: str, allowed: Iterable[str], max_listed: int = MAX_LISTED) -> str:
    """Return " (did you mean 'x'?)", " (allowed: a, b)" or "" for an unknown ``key``."""
    choices = sorted(allowed)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if len(choices) <= max_listed:
        return f" (allowed: {', '.join(choices)})"
    return ""
