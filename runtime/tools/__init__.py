"""Tools: the ``@tool`` API plugin authors write against, the registry, the runner and plugin
discovery.

- ``api``: :func:`tool`, :class:`Tool`, :class:`ToolContext`, :class:`ToolRegistry`.
- ``runner``: :class:`ToolRunner`, which validates arguments and runs calls concurrently, each
  under its own ``Guard("tool:<name>")``.
- ``plugins``: discovery from the ``holdfast.plugins`` entry-point group and plugin folders.

Plugins import only this package: the errors a tool may raise and the health-check result
types (:class:`CheckResult`, :class:`HealthStatus`) are re-exported here.
"""

from __future__ import annotations

from runtime.core.errors import (
    AppError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from runtime.resilience.health import CheckResult, HealthStatus
from runtime.tools.api import (
    AskPermission,
    Tool,
    ToolArgumentsError,
    ToolContext,
    ToolDefinitionError,
    ToolNameClash,
    ToolRegistry,
    tool,
)

__all__ = [
    "AppError",
    "AskPermission",
    "CheckResult",
    "HealthStatus",
    "NotFoundError",
    "ServiceUnavailableError",
    "Tool",
    "ToolArgumentsError",
    "ToolContext",
    "ToolDefinitionError",
    "ToolNameClash",
    "ToolRegistry",
    "ValidationError",
    "tool",
]
