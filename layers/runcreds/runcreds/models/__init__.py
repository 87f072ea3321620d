"""Models of what runcreds reads and writes (pydantic), and how their validation errors read."""

from __future__ import annotations

from pydantic import ValidationError


def problems(error: ValidationError, whole: str, most: int | None = None) -> str:
    """`location: message; ...` of a validation error (`whole` names a problem with no location)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or whole}: {e['msg']}" for e in error.errors()[:most])
