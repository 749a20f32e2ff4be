"""Query and path parameters shared by the API's routes, with the bounds the store can take.

A parameter out of range is a 422 naming it (``query.limit: Input should be greater than or
equal to 0``) instead of reaching the database: PostgreSQL refuses a negative ``OFFSET``, an
id past its integer column and text with a NUL character.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from watchkeeper.errors import InputError

MAX_INT = 2**31 - 1  # the store's integer columns (ids), and the largest useful offset

Limit = Annotated[
    int, Query(ge=0, le=MAX_INT, description="at most this many (capped by the service)")
]
Offset = Annotated[int, Query(ge=0, le=MAX_INT, description="skip this many")]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_INT)]


def path_id(description: str) -> object:
    """A numeric id in the path: 1 to 2³¹ − 1."""
    return Path(ge=1, le=MAX_INT, description=description)


async def _reject_nul(request: Request) -> None:
    """The route's text parameters cannot hold a NUL character (U+0000): a 400 naming it."""
    route = request.scope.get("route")
    declared = {p.alias for p in getattr(getattr(route, "dependant", None), "query_params", [])}
    reject_nul(request.path_params, request.query_params, declared)


def reject_nul(
    path_params: Mapping[str, Any], query_params: Mapping[str, str], declared: Iterable[str]
) -> None:
    """An :class:`InputError` naming the first path parameter, or ``declared`` query
    parameter, holding a NUL character."""
    for name, value in path_params.items():
        if "\x00" in str(value):
            raise InputError(f"path parameter {name}: contains a NUL character (U+0000)")
    for name, value in query_params.items():
        if name in declared and "\x00" in value:
            raise InputError(f"query parameter {name}: contains a NUL character (U+0000)")


NO_NUL = Depends(_reject_nul)
