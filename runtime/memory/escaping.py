"""The one way a value enters a LanceDB ``where`` string.

LanceDB filters are DataFusion SQL text with no bound parameters, so a user id such as
``x' OR '1'='1`` would widen a filter to every user. Every value goes through
:func:`sql_string`: it returns a single-quoted SQL literal with embedded quotes doubled
(DataFusion's only escape in a standard string; backslashes and newlines are literal
characters there) and refuses NUL, which the SQL parser cannot carry. Column names are
never user input; they come from the fixed schema and are checked against it.
"""

from __future__ import annotations

from collections.abc import Iterable

from runtime.core.errors import ValidationError

#: The only columns filters may name (the typed, filterable columns of the memory table).
FILTER_COLUMNS = frozenset({"id", "user_id", "conversation_id", "type", "content_hash"})


def sql_string(value: str) -> str:
    """``value`` as a single-quoted DataFusion SQL literal, embedded quotes doubled.

    Raises:
        ValidationError: ``value`` is not a string or contains NUL.
    """
    if not isinstance(value, str):
        raise ValidationError(f"filter value must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise ValidationError("filter value may not contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def eq(column: str, value: str) -> str:
    """``column = 'value'`` for one of :data:`FILTER_COLUMNS`.

    Raises:
        ValidationError: an unknown column, or a value :func:`sql_string` refuses.
    """
    if column not in FILTER_COLUMNS:
        raise ValidationError(f"unknown filter column {column!r}")
    return f"{column} = {sql_string(value)}"


def one_of(column: str, values: Iterable[str]) -> str:
    """``column IN ('a', 'b')``; an empty set matches nothing (``FALSE``).

    Raises:
        ValidationError: an unknown column, or a value :func:`sql_string` refuses.
    """
    if column not in FILTER_COLUMNS:
        raise ValidationError(f"unknown filter column {column!r}")
    items = [sql_string(v) for v in values]
    return f"{column} IN ({', '.join(items)})" if items else "FALSE"


def all_of(*clauses: str | None) -> str:
    """AND of the non-empty clauses, each parenthesised; ``TRUE`` when there are none."""
    parts = [f"({c})" for c in clauses if c]
    return " AND ".join(parts) if parts else "TRUE"
