"""Tools: ``@tool`` turns a typed function into something the model can call, and the registry.

A tool is a plain function, sync or async, with type hints and a docstring::

    @tool
    def clock(timezone: str = "UTC") -> str:
        '''Current date and time in an IANA timezone.'''

Its name is the function's name, its description the docstring's first paragraph (an
``Args:`` section, if present, describes each parameter) and its JSON schema comes from the
type hints through pydantic (``Annotated[int, Field(ge=0)]`` constraints included). A
parameter annotated :class:`ToolContext` is injected by the runtime (user, conversation,
memory store, state store, ...) and is not part of the schema.

Running calls (validation, permission, guards, output caps) lives in
:mod:`runtime.tools.runner`; this module owns definitions and the registry only.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, create_model
from pydantic import ValidationError as PydanticValidationError

from runtime.config import PluginsConfig
from runtime.core.errors import ValidationError
from runtime.core.ids import validate_user_id

if TYPE_CHECKING:
    from runtime.memory.store import VectorMemoryStore
    from runtime.resilience import HealthMonitor, Resilience
    from runtime.state.store import RedisStateStore

Permission = Literal["allow", "ask", "deny"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolDefinitionError(ValidationError):
    """A function cannot be made into a tool (bad name, untyped parameter, ...)."""


class ToolNameClash(ValidationError):
    """Two plugins registered a tool of the same name; the second one is refused."""


class ToolArgumentsError(ValidationError):
    """The model's arguments do not match the tool's schema; the message is for the model."""


@dataclass(frozen=True)
class ToolContext:
    """What the runtime hands a tool that asks for it. Never part of the schema.

    ``user_id`` is checked on construction by :func:`runtime.core.ids.validate_user_id` (the one
    user-id rule), so a tool never sees an id the stores would refuse; an invalid one raises
    :class:`runtime.core.errors.ValidationError`.
    """

    user_id: str
    conversation_id: str = ""
    turn_id: str = ""
    session_id: str | None = None
    #: The long-term memory store, or None when memory is disabled.
    memory: VectorMemoryStore | None = None
    #: The key/value state store for small stateful tools.
    state: RedisStateStore | None = None
    #: The Resilience registry (breaker snapshots) and the HealthMonitor.
    resilience: Resilience | None = None
    monitor: HealthMonitor | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_user_id(self.user_id)


@dataclass(frozen=True)
class Tool:
    """A callable the model may request: its public definition and how to invoke it."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    context_param: str | None = None
    #: Seconds one call may take; None: the [resilience.tools] timeout.
    timeout: float | None = None
    #: The tool's own default permission; config [plugins].permissions overrides it.
    permission: Permission | None = None
    #: Calls for which an "allow" becomes "ask" (the harmful actions of a tool, e.g. delete).
    ask_if: Callable[[Mapping[str, Any]], bool] | None = None
    #: Plugin that registered it (for messages about clashes and failures).
    plugin: str = ""

    @property
    def is_async(self) -> bool:
        """True when ``fn`` is a coroutine function (sync ones run in a worker thread)."""
        return inspect.iscoroutinefunction(self.fn)

    def to_openai(self) -> dict[str, Any]:
        """The tool in the chat-completions ``tools`` format: ``{"type": "function", "function": {...}}``."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments checked and coerced against the schema; raises :class:`ToolArgumentsError`."""
        try:
            model = self.args_model.model_validate(dict(arguments))
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
            )
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: {problems}", details={"tool": self.name}
            ) from exc
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext | None = None) -> Any:
        """Call the function with validated ``arguments``; sync functions run in a thread."""
        kwargs = dict(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = context
        if self.is_async:
            return await self.fn(**kwargs)
        # A blocking tool must not freeze the UI's event loop.
        return await asyncio.to_thread(self.fn, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The decorated function stays callable as before (handy in plugin tests)."""
        return self.fn(*args, **kwargs)


def _split_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {param: text}) from a Google-style docstring."""
    text = inspect.cleandoc(doc or "")
    if not text:
        return "", {}
    parts = re.split(r"\n\s*(?:Args|Arguments|Parameters):\s*\n", text, maxsplit=1)
    description = " ".join(parts[0].split("\n\n")[0].split())
    params: dict[str, str] = {}
    if len(parts) == 2:
        current = None
        for line in parts[1].splitlines():
            match = re.match(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if match and (line[:1].isspace() or current is None or not line.strip().endswith(":")):
                if re.match(r"^\s*(Returns|Raises|Yields|Examples?)\s*:", line):
                    break
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current and line.strip():
                params[current] = (params[current] + " " + line.strip()).strip()
    return description, params


def _build(
    fn: Callable[..., Any],
    name: str | None,
    description: str | None,
    timeout: float | None,
    permission: Permission | None,
    ask_if: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Tool:
    tool_name = name or fn.__name__
    if not _NAME_RE.match(tool_name):
        raise ToolDefinitionError(f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'")
    doc_description, param_docs = _split_docstring(fn.__doc__)
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:  # a NameError in a plugin's annotation is the author's to fix
        raise ToolDefinitionError(f"tool {tool_name}: cannot resolve type hints ({exc})") from exc
    fields: dict[str, Any] = {}
    context_param = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {tool_name}: *args/**kwargs cannot be described to a model")
        annotation = hints.get(param.name)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if annotation is None:
            raise ToolDefinitionError(f"tool {tool_name}: parameter {param.name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        if param.name in param_docs:
            from pydantic import Field

            fields[param.name] = (annotation, Field(default, description=param_docs[param.name]))
        else:
            fields[param.name] = (annotation, default)
    model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("properties", {})
    return Tool(
        name=tool_name,
        description=description or doc_description or tool_name,
        parameters=schema,
        fn=fn,
        args_model=model,
        context_param=context_param,
        timeout=timeout,
        permission=permission,
        ask_if=ask_if,
    )


@overload
def tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    permission: Permission | None = None,
    ask_if: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Tool:
    """Bare or with options and the function given: ``@tool`` returns the :class:`Tool`."""


@overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    permission: Permission | None = None,
    ask_if: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Callable[[Callable[..., Any]], Tool]:
    """With options only: ``@tool(name=...)`` returns a decorator making the :class:`Tool`."""


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    permission: Permission | None = None,
    ask_if: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a typed function a :class:`Tool`; usable bare (``@tool``) or with options (``@tool(...)``).

    Args:
        fn: the function (bare use); None returns a decorator taking it.
        name: the tool's name (default: the function's); 1-64 letters, digits, ``_`` or ``-``.
        description: what the model is told (default: the docstring's first paragraph).
        timeout: seconds one call may take (default: the ``[resilience.tools]`` timeout).
        permission: the tool's default permission; config ``[plugins].permissions`` overrides it.
        ask_if: ``ask_if(arguments)`` marks the calls that can cause harm (a delete, say): for
            those an "allow" permission becomes "ask", unless the user's config names the tool.

    Returns:
        The :class:`Tool` (its schema is the chat-completions ``{"type": "function", ...}``
        form), or a decorator making one.

    Raises:
        ToolDefinitionError: a bad name, an untyped parameter, ``*args``/``**kwargs``, or type
            hints that cannot be resolved.
    """
    if fn is not None:
        return _build(fn, name, description, timeout, permission, ask_if)

    def wrap(inner: Callable[..., Any]) -> Tool:
        return _build(inner, name, description, timeout, permission, ask_if)

    return wrap


class ToolRegistry:
    """The tools the model may call, by name; a second tool of the same name is refused."""

    def __init__(self, config: PluginsConfig | None = None) -> None:
        self.config = config or PluginsConfig()
        self._tools: dict[str, Tool] = {}
        #: Tools the user answered "always" for, in this process.
        self._always: set[str] = set()

    def register(self, item: Tool | Callable[..., Any], *, plugin: str = "") -> Tool:
        """Add a tool (a plain typed function is wrapped with ``@tool``), tagged with ``plugin``.

        Returns:
            The registered :class:`Tool`.

        Raises:
            ToolNameClash: a tool of the same name is already registered (it is kept).
            ToolDefinitionError: ``item`` is a function that cannot be made a tool.
        """
        new = item if isinstance(item, Tool) else tool(item)
        if plugin and not new.plugin:
            new = Tool(**{**new.__dict__, "plugin": plugin})
        existing = self._tools.get(new.name)
        if existing is not None:
            where = f" (from {existing.plugin})" if existing.plugin else ""
            raise ToolNameClash(
                f"tool {new.name!r}{' of ' + plugin if plugin else ''} clashes with the "
                f"already registered {new.name!r}{where}; not registered",
                details={"tool": new.name, "plugin": plugin, "existing": existing.plugin},
            )
        self._tools[new.name] = new
        return new

    def unregister(self, name: str) -> None:
        """Remove the tool called ``name``; unknown names are ignored."""
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def names(self) -> list[str]:
        """Every registered tool name, sorted."""
        return sorted(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """The ``tools`` parameter of a chat completion request.

        Denied tools stay listed: a call to one gets a "refused" result the model can explain,
        which is clearer to the user than a model that does not know the tool exists.
        """
        return [t.to_openai() for t in self]

    def permission(self, name: str, arguments: Mapping[str, Any] | None = None) -> Permission:
        """The permission for a call of tool ``name`` with ``arguments``.

        Config for this tool, else the tool's own default, else the config default; a harmful
        call (the tool's ``ask_if``) is asked about unless the config names the tool.
        """
        if name in self.config.permissions:
            return self.config.permissions[name]
        found = self._tools.get(name)
        chosen = (
            found.permission if found is not None and found.permission is not None else self.config.default_permission
        )
        if (
            chosen == "allow"
            and found is not None
            and found.ask_if is not None
            and arguments is not None
            and found.ask_if(arguments)
        ):
            return "ask"
        return chosen

    def allow_always(self, name: str) -> None:
        """Remember, for this process only, that the user answered "always" for ``name``."""
        self._always.add(name)

    def allowed_always(self, name: str) -> bool:
        """True if the user answered "always" for ``name`` in this process."""
        return name in self._always


#: ``await ask(tool name, arguments)`` -> ``"once"``, ``"always"`` or anything else for no.
AskPermission = Callable[[str, dict[str, Any]], Awaitable[str]]
