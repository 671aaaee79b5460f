"""Plugin discovery: the ``holdfast.plugins`` entry-point group and plugin folders.

A plugin is a Python module. Holdfast registers:

* every module-level :class:`runtime.tools.Tool` (a function decorated with ``@tool``);
* ``HEALTH_CHECKS``: an optional ``{name: async () -> CheckResult}`` mapping;
* ``FALLBACKS``: an optional ``{service: handler}`` mapping for the resilience layer;
* ``register(api)``: an optional function for anything dynamic (``api.add_tool(...)``).

Folders (``[plugins].paths``, the repo's ``plugins/`` when ``include_builtin``, and the user
plugins dir) hold one plugin per ``*.py`` file or package directory. An entry point may name a
module, a tool, a list of tools or a ``register(api)`` function.

A plugin that fails to import or register is skipped, its tools rolled back, and the reason
kept in :attr:`PluginReport.errors` (shown by ``holdfast doctor``, ``holdfast tools`` and the
UI); the app still starts. A tool whose name is taken is refused and reported, never
silently overwritten.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import platformdirs

from runtime.config import APP_NAME, PluginsConfig
from runtime.core.errors import ValidationError, describe
from runtime.tools.api import Tool, ToolNameClash, ToolRegistry

if TYPE_CHECKING:
    from runtime.resilience import HealthMonitor, Resilience
    from runtime.resilience.fallback import FallbackHandler
    from runtime.resilience.health import CheckFn

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "holdfast.plugins"
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "plugins"


def user_plugins_dir() -> Path:
    """The per-user plugin folder: ``<user config dir>/holdfast/plugins`` (platformdirs)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "plugins"


@dataclass
class PluginInfo:
    """One loaded plugin: where it came from and the tools, health checks and fallbacks it registered."""

    name: str
    source: str  # "entry point pkg.mod:obj" or a file path
    tools: list[str] = field(default_factory=list)
    health_checks: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    #: (service, handler) pairs, so a plugin that fails half-way can take them back.
    fallback_handlers: list[tuple[str, FallbackHandler]] = field(default_factory=list, repr=False)


@dataclass
class PluginReport:
    """The outcome of one discovery: plugins loaded, plugins that failed (with why), plugins disabled."""

    loaded: list[PluginInfo] = field(default_factory=list)
    #: plugin (or ``plugin/tool`` for a refused tool) -> one-line reason.
    errors: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as a dict for ``holdfast health``: ``loaded`` (each :class:`PluginInfo`'s fields), ``errors``, ``skipped``."""
        return {"loaded": [vars(p) for p in self.loaded], "errors": dict(self.errors), "skipped": list(self.skipped)}


class PluginError(ValidationError):
    """One plugin is malformed; caught by the loader, which skips that plugin."""


class PluginAPI:
    """What ``register(api)`` receives: add tools, health checks and fallbacks for one plugin."""

    def __init__(self, loader: PluginLoader, info: PluginInfo) -> None:
        self._loader = loader
        self._info = info

    def add_tool(self, item: Tool | Callable[..., Any]) -> Tool:
        """Register a tool (a plain typed function is wrapped with ``@tool``); returns it.

        A name taken by another tool, or disabled in the config, is reported and skipped (the
        existing tool is returned), not raised.

        Raises:
            ToolDefinitionError: ``item`` is a function that cannot be made a tool.
        """
        return self._loader._add_tool(self._info, item)

    def add_health_check(self, name: str, check: CheckFn, timeout: float = 5.0) -> None:
        """Register ``check`` (an async function returning a ``CheckResult``) with the health monitor.

        ``timeout`` is in seconds. Ignored when the loader has no monitor.

        Raises:
            PluginError: a check of that name is already registered.
        """
        self._loader._add_check(self._info, name, check, timeout)

    def add_fallback(self, service: str, handler: FallbackHandler) -> None:
        """Add ``handler(error, key)`` to ``service``'s fallback chain; ignored without resilience."""
        self._loader._add_fallback(self._info, service, handler)


class PluginLoader:
    """Finds and loads plugins into a registry (and optionally a monitor and resilience)."""

    def __init__(
        self,
        config: PluginsConfig,
        registry: ToolRegistry,
        *,
        monitor: HealthMonitor | None = None,
        resilience: Resilience | None = None,
        builtin_dir: Path | None = BUILTIN_DIR,
        user_dir: Path | None = None,
        entry_point_source: Callable[[], Iterable[EntryPoint]] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.monitor = monitor
        self.resilience = resilience
        self.builtin_dir = builtin_dir
        self.user_dir = user_dir if user_dir is not None else user_plugins_dir()
        self._entry_points = entry_point_source or (lambda: entry_points(group=ENTRY_POINT_GROUP))
        self.report = PluginReport()
        self._disabled = set(config.disabled)

    # ------------------------------------------------------------ discovery

    def folders(self) -> list[Path]:
        """Plugin folders in load order: built-in, ``[plugins].paths``, the user's; duplicates removed."""
        found: list[Path] = []
        if self.config.include_builtin and self.builtin_dir is not None:
            found.append(self.builtin_dir)
        found.extend(Path(p).expanduser() for p in self.config.paths)
        if self.user_dir is not None:
            found.append(self.user_dir)
        unique: list[Path] = []
        for folder in found:
            if folder.resolve() not in {u.resolve() for u in unique}:
                unique.append(folder)
        return unique

    def load_all(self) -> PluginReport:
        """Load every plugin found; never raises for a plugin's fault."""
        for folder in self.folders():
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    name = path.stem
                    if name.startswith(("_", ".")) or not (
                        (path.suffix == ".py" and path.is_file()) or (path / "__init__.py").is_file()
                    ):
                        continue
                    self._guarded_load(name, str(path), functools.partial(self._import_path, name, path))
        try:
            eps = list(self._entry_points())
        except Exception as exc:  # noqa: BLE001 - broken installed metadata, of any kind, must not stop the app
            self._fail("entry points", f"cannot read the {ENTRY_POINT_GROUP} entry points: {describe(exc)}")
            eps = []
        for ep in eps:
            self._guarded_load(ep.name, f"entry point {ep.value}", ep.load)
        return self.report

    def load_object(self, name: str, obj: Any, source: str = "") -> PluginInfo | None:
        """Load one already-imported plugin (a module, tool, list of tools or register function)."""
        return self._guarded_load(name, source or name, lambda: obj)

    # ------------------------------------------------------------ loading

    def _guarded_load(self, name: str, source: str, produce: Callable[[], Any]) -> PluginInfo | None:
        if name in self._disabled:
            self.report.skipped.append(name)
            return None
        if any(p.name == name for p in self.report.loaded):
            self._fail(name, f"a plugin named {name!r} is already loaded; {source} skipped")
            return None
        info = PluginInfo(name=name, source=source)
        try:
            obj = produce()
            self._register(info, obj)
        except Exception as exc:  # any failure of third-party code: skip the plugin, keep the app
            self._rollback(info)
            self._fail(name, f"plugin {name} ({source}) failed to load: {describe(exc)}")
            log.debug("plugin %s traceback", name, exc_info=True)
            return None
        self.report.loaded.append(info)
        log.info("plugin %s loaded from %s: tools %s", name, source, ", ".join(info.tools) or "none")
        return info

    def _import_path(self, name: str, path: Path) -> ModuleType:
        module_name = f"holdfast_plugin_{name}"
        if path.is_dir():
            spec = importlib.util.spec_from_file_location(
                module_name, path / "__init__.py", submodule_search_locations=[str(path)]
            )
        else:
            spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    def _register(self, info: PluginInfo, obj: Any) -> None:
        if isinstance(obj, Tool):
            self._add_tool(info, obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                self._add_tool(info, item)
        elif isinstance(obj, ModuleType):
            for value in list(vars(obj).values()):
                if isinstance(value, Tool):
                    self._add_tool(info, value)
            for check_name, check in dict(getattr(obj, "HEALTH_CHECKS", {}) or {}).items():
                self._add_check(info, check_name, check, 5.0)
            for service, handler in dict(getattr(obj, "FALLBACKS", {}) or {}).items():
                self._add_fallback(info, service, handler)
            register = getattr(obj, "register", None)
            if callable(register):
                register(PluginAPI(self, info))
        elif callable(obj):
            obj(PluginAPI(self, info))
        else:
            raise PluginError(f"expected a module, a tool, a list of tools or register(api), got {type(obj).__name__}")
        if not (info.tools or info.health_checks or info.fallbacks):
            log.warning("plugin %s registered nothing", info.name)

    def _add_tool(self, info: PluginInfo, item: Tool | Callable[..., Any]) -> Tool:
        name = item.name if isinstance(item, Tool) else getattr(item, "__name__", "?")
        if name in self._disabled:
            self.report.skipped.append(f"{info.name}/{name}")
            return item if isinstance(item, Tool) else self.registry.get(name)  # type: ignore[return-value]
        try:
            added = self.registry.register(item, plugin=info.name)
        except ToolNameClash as exc:
            # The clash is this tool's problem only: the plugin's other tools still load.
            self._fail(f"{info.name}/{name}", exc.message)
            return item if isinstance(item, Tool) else self.registry.get(name)  # type: ignore[return-value]
        info.tools.append(added.name)
        return added

    def _add_check(self, info: PluginInfo, name: str, check: CheckFn, timeout: float) -> None:
        if self.monitor is None:
            return
        if name in self.monitor.names:
            raise PluginError(f"health check {name!r} is already registered")
        self.monitor.register_check(name, check, timeout=timeout)
        info.health_checks.append(name)

    def _add_fallback(self, info: PluginInfo, service: str, handler: FallbackHandler) -> None:
        if self.resilience is None:
            return
        self.resilience.fallbacks.register(service, handler)
        info.fallbacks.append(service)
        info.fallback_handlers.append((service, handler))

    def _rollback(self, info: PluginInfo) -> None:
        for name in info.tools:
            self.registry.unregister(name)
        if self.monitor is not None:
            for name in info.health_checks:
                self.monitor.unregister_check(name)
        if self.resilience is not None:
            for service, handler in info.fallback_handlers:
                self.resilience.fallbacks.unregister(service, handler)
        info.tools.clear()
        info.health_checks.clear()
        info.fallbacks.clear()
        info.fallback_handlers.clear()

    def _fail(self, key: str, message: str) -> None:
        self.report.errors[key] = message
        log.error("%s", message)


def load_plugins(config: PluginsConfig, registry: ToolRegistry, **kwargs: Any) -> PluginReport:
    """Discover and load every plugin into ``registry``; see :class:`PluginLoader`."""
    return PluginLoader(config, registry, **kwargs).load_all()
