"""An MCP server's tools as registry tools: schema checks, names, permissions, argument validation.

A tool an MCP server lists (MCP spec, server/tools, "Tool") joins the :class:`ToolRegistry` as
an :class:`McpTool`, exactly like a plugin's tool: the model sees its name, description and
JSON schema; the runner validates arguments, asks permission and runs it under
``Guard("tool:<name>")``. What differs is where the schema comes from: the server, which may
lie. :func:`check_input_schema` refuses a schema that is not a valid JSON Schema (2020-12 unless
it names another draft through ``$schema``) with ``type: "object"`` at its root, or one with a
``$ref`` that resolves to nothing inside it; such a tool is reported and skipped, the server's
other tools still join. A ``$ref`` to another document is never fetched (jsonschema's default
registry would download it: a request to any URL the server names, on every call).

Names: the server's name for the tool when no plugin has it and no other MCP server offers a
tool of that name, else ``<server>__<tool>``, for every server that offers it (so the names do
not depend on which server connected first; a dot, as in ``server.tool``, is not allowed in an
OpenAI function name, ``^[a-zA-Z0-9_-]{1,64}$``, which the demo server enforces too). Characters
outside that set become ``_``; the server is always called with its own name.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mcp_types
from jsonschema import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for
from jsonschema_specifications import REGISTRY as METASCHEMAS
from pydantic import BaseModel, ConfigDict
from referencing import Registry, Specification
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

from runtime.config import McpServerConfig
from runtime.core.errors import ValidationError
from runtime.core.safe_text import clean
from runtime.tools.api import Permission, Tool, ToolArgumentsError

if TYPE_CHECKING:
    # The resolver's class is not among referencing's public names; annotations only.
    from referencing._core import Resolver

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
#: The most argument problems listed in one error for the model.
MAX_PROBLEMS = 5

#: ``await call(server's tool name, arguments)`` -> the text the model gets.
CallTool = Callable[[str, dict[str, Any]], Awaitable[str]]


class InvalidToolSchema(ValidationError):
    """A tool's input schema is not a valid JSON Schema object; the tool is skipped."""


class _Arguments(BaseModel):
    """Placeholder ``args_model``: an MCP tool's arguments are checked against its JSON schema."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class McpTool(Tool):
    """A tool of an MCP server, as the registry holds it.

    ``server`` is the configured server name, ``remote_name`` the server's name for the tool
    (what it is called with); ``name`` may differ on a clash. Arguments are validated by
    ``validator`` (the tool's own JSON schema), not by a pydantic model.
    """

    server: str = ""
    remote_name: str = ""
    validator: Validator | None = field(default=None, compare=False, repr=False)

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``arguments`` checked against the tool's JSON schema; raises :class:`ToolArgumentsError`
        listing up to :data:`MAX_PROBLEMS` problems (a message for the model)."""
        value = dict(arguments)
        if self.validator is None:
            return value
        try:
            problems = sorted(self.validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        except (Unresolvable, SchemaError, RecursionError) as exc:
            # check_input_schema catches what it can see; a schema can still fail on some input.
            raise ToolArgumentsError(
                f"the arguments for {self.name} cannot be checked: its MCP server ({self.server}) gave a broken "
                f"input schema ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
                details={"tool": self.name},
            ) from exc
        if problems:
            listed = "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: {e.message}"
                for e in problems[:MAX_PROBLEMS]
            )
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {listed}", details={"tool": self.name})
        return value


def check_input_schema(schema: object) -> Validator:
    """A validator for ``schema`` (a tool's ``inputSchema``).

    The validator resolves ``$ref`` only inside ``schema`` (and the JSON Schema metaschemas):
    nothing is ever fetched.

    Raises:
        InvalidToolSchema: ``schema`` is not a JSON object with ``type: "object"`` at its root,
            not a valid JSON Schema of its draft (``$schema``, default 2020-12, as MCP says), or
            has a ``$ref`` that resolves to nothing inside it (the reference is named).
    """
    if not isinstance(schema, dict):
        raise InvalidToolSchema(f"the input schema is a {type(schema).__name__}, not a JSON object")
    if schema.get("type") != "object":
        raise InvalidToolSchema(f"the input schema's type is {schema.get('type')!r}, not 'object'")
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "root"
        raise InvalidToolSchema(f"not a valid JSON Schema at {where}: {exc.message}") from exc
    draft = schema.get("$schema")
    spec = specification_with(draft, default=DRAFT202012) if isinstance(draft, str) else DRAFT202012
    # No retrieve function: a reference outside the schema is Unresolvable, never downloaded.
    registry: Registry[Any] = METASCHEMAS.with_resource("", spec.create_resource(schema))
    try:
        _check_refs(schema, registry.resolver(), spec, "")
    except RecursionError as exc:
        raise InvalidToolSchema("the input schema is nested too deeply to check") from exc
    return cls(schema, registry=registry)


#: Keywords whose values are instance data, not subschemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


def _check_refs(node: object, resolver: Resolver[Any], spec: Specification[Any], where: str) -> None:
    """Raise :class:`InvalidToolSchema` for the first ``$ref`` under ``node`` that resolves to nothing."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _check_refs(item, resolver, spec, f"{where}/{index}")
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$id"), str) and where:
        resolver = resolver.in_subresource(spec.create_resource(node))
    ref = node.get("$ref")
    if isinstance(ref, str):
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:
            raise InvalidToolSchema(
                f"not a valid JSON Schema at {where.lstrip('/') or 'root'}: $ref {ref!r} points to nothing in the "
                "schema (references to other documents are not fetched)"
            ) from exc
    for key, value in node.items():
        if key not in _DATA_KEYWORDS:
            _check_refs(value, resolver, spec, f"{where}/{key}")


def safe_name(text: str) -> str:
    """``text`` as a function name the model may call: characters outside ``[a-zA-Z0-9_-]``
    become ``_``, cut to 64 characters ("_" when nothing is left)."""
    return _UNSAFE.sub("_", text)[:64] or "_"


def registered_name(server: str, remote: str, taken: Callable[[str], bool]) -> str:
    """The registry name for the server's tool ``remote``: :func:`safe_name` of it when
    ``taken(name)`` is false, else :func:`qualified_name` (see the module docstring)."""
    plain = safe_name(remote)
    return plain if not taken(plain) else qualified_name(server, remote)


def qualified_name(server: str, remote: str) -> str:
    """``<server>__<remote>``, made safe (:func:`safe_name`): the name of a tool whose own name is taken."""
    return safe_name(f"{server}__{remote}")


def tool_permission(config: McpServerConfig, remote: str, name: str) -> Permission:
    """The tool's default permission: ``permissions`` by the server's name for it (or the
    registered name), else the server's ``permission``."""
    return config.permissions.get(remote) or config.permissions.get(name) or config.permission


def make_tool(
    server: str, config: McpServerConfig, listed: mcp_types.Tool, name: str, call: CallTool, timeout: float
) -> McpTool:
    """The registry tool for ``listed`` (a tool the server listed), registered as ``name``.

    ``call`` runs it on the server; ``timeout`` (seconds) is the runner's backstop for one call.

    Raises:
        InvalidToolSchema: its input schema is invalid (:func:`check_input_schema`).
    """
    validator = check_input_schema(listed.input_schema)
    remote = listed.name

    async def run(**arguments: Any) -> str:
        return await call(remote, arguments)

    parameters = {k: v for k, v in listed.input_schema.items() if k not in ("title", "$schema")}
    parameters.setdefault("properties", {})
    description = listed.description or listed.title or (listed.annotations.title if listed.annotations else None)
    return McpTool(
        name=name,
        # The server's text reaches /tools, holdfast mcp list and the model: no terminal control.
        description=" ".join(clean(description or f"{remote} (MCP server {server})").split()),
        parameters=parameters,
        fn=run,
        args_model=_Arguments,
        timeout=timeout,
        permission=tool_permission(config, remote, name),
        plugin=f"mcp:{server}",
        server=server,
        remote_name=remote,
        validator=validator,
    )
