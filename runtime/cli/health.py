"""``holdfast health``: one JSON snapshot of every breaker and health check.

Exit 0 when the overall status is ``healthy``, 1 otherwise, so a script can gate on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK, with_runtime, write_json

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime


def health(ctx: typer.Context) -> int:
    """JSON snapshot of breakers and health checks; exit 1 unless healthy."""

    async def body(rt: Runtime) -> int:
        report = await rt.health()
        write_json(report)
        return EXIT_OK if report["status"] == "healthy" else EXIT_FAILED

    return with_runtime(ctx, body)


def register(root: typer.Typer) -> None:
    """Add ``health`` to the root command."""
    root.command("health")(health)
