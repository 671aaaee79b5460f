"""Typed, validated configuration and where each value came from.

Layers, lowest first: built-in defaults < the repo's ``config.toml`` < the user config file
(platformdirs) < ``--config PATH`` < environment (``HOLDFAST_SECTION__KEY`` plus
``OPENAI_API_KEY``/``OPENAI_BASE_URL``/``REDIS_URL``) < CLI flags. The result is one immutable
:class:`Config` passed to whoever needs it; nothing reads configuration from a global.

Any invalid value or unknown key raises :class:`ConfigError` with one line naming the
source, the key, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo

from runtime.core.errors import ConfigError
from runtime.core.errors import ValidationError as AppValidationError
from runtime.core.ids import validate_user_id
from runtime.core.safe_text import mask_url_credentials

APP_NAME = "holdfast"
ENV_PREFIX = "HOLDFAST_"
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"

Preset = Literal["openai", "ollama", "vllm", "llamacpp", "lmstudio", "demo"]

#: Base URL and tool support of each endpoint preset; ``base_url`` in config wins.
PRESETS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1", "supports_tools": True, "model": "gpt-4o-mini"},
    "ollama": {"base_url": "http://127.0.0.1:11434/v1", "supports_tools": True, "model": "llama3.1"},
    "vllm": {"base_url": "http://127.0.0.1:8000/v1", "supports_tools": True, "model": ""},
    "llamacpp": {"base_url": "http://127.0.0.1:8080/v1", "supports_tools": False, "model": "local"},
    "lmstudio": {"base_url": "http://127.0.0.1:1234/v1", "supports_tools": True, "model": ""},
    "demo": {"base_url": "", "supports_tools": True, "model": "holdfast-demo"},
}

SECRET_KEYS = frozenset({"api_key"})
#: Tables whose values may hold secrets (an MCP server's ``env`` and HTTP ``headers``): shown as keys only.
SECRET_TABLES = frozenset({"env", "headers"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class LLMConfig(_Section):
    """``[llm]``: the OpenAI-compatible endpoint (every key is explained in ``config.toml``).

    ``max_output_tokens`` and ``context_window`` (0: look the model up) are in tokens;
    ``connect_timeout`` and ``read_timeout`` in seconds; ``demo_tokens_per_second`` is the
    demo model's streaming speed. ``preset`` supplies the base URL, model and tool support
    that are left empty (:data:`PRESETS`). ``stream``: ``"auto"`` streams and, when the endpoint
    answers a stream request with a whole JSON reply, accepts it and stops asking for streams;
    ``true`` always asks for a stream (a JSON reply is still accepted); ``false`` never streams.
    """

    preset: Preset = "demo"
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    api_key: str = ""
    model: str = ""
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    max_output_tokens: PositiveInt = 1024
    context_window: NonNegInt = 0
    supports_tools: bool | None = None
    stream: Literal["auto"] | bool = "auto"
    connect_timeout: PositiveFloat = 5.0
    read_timeout: PositiveFloat = 60.0
    demo_tokens_per_second: PositiveFloat = 200.0

    @property
    def effective_base_url(self) -> str:
        """``base_url``, else the preset's (empty for ``demo``: Holdfast starts its demo server)."""
        return self.base_url or PRESETS[self.preset]["base_url"]

    @property
    def effective_model(self) -> str:
        """``model``, else the preset's default model name (may be empty for vllm/lmstudio)."""
        return self.model or PRESETS[self.preset]["model"]

    @property
    def tools_supported(self) -> bool:
        """Whether to send native tool calls (OpenAI ``tools``): ``supports_tools``, else the preset's."""
        return PRESETS[self.preset]["supports_tools"] if self.supports_tools is None else self.supports_tools

    def resolve_api_key(self, environ: Mapping[str, str] | None = None) -> str:
        """``api_key``, else the variable named by ``api_key_env`` in ``environ`` (default ``os.environ``), else ""."""
        env = os.environ if environ is None else environ
        return self.api_key or env.get(self.api_key_env, "")


class RedisConfig(_Section):
    """``[redis]``: where conversations and sessions live (every key is explained in ``config.toml``).

    ``url`` empty means the data dir's embedded redis-server on ``embedded_port`` (0: a free port),
    shared by every Holdfast process on that data dir; ``embedded_keep_running`` keeps it running
    after the last of them exits (default: the last one stops it). ``startup_timeout``, ``session_ttl``, ``session_max_ttl`` (the spec's 1 h and 24 h),
    ``conversation_retention`` (0: forever) and ``archive_ttl`` (the spec's 7 days) are in
    seconds; ``slow_ping_ms`` in milliseconds. ``cluster`` (or a ``redis+cluster://`` URL) selects
    redis-py's Redis Cluster client. ``min_replicas_ack`` > 0 makes every conversation append wait
    (Redis ``WAIT``) up to ``replica_ack_timeout`` seconds for that many replicas; a write they did
    not all acknowledge is journaled locally as well (:mod:`runtime.state.client`).
    """

    url: str = ""
    key_prefix: str = "holdfast"
    embedded_port: NonNegInt = 0
    embedded_data_dir: str = ""
    embedded_keep_running: bool = False
    startup_timeout: PositiveFloat = 10.0
    session_ttl: PositiveInt = 3600
    session_max_ttl: PositiveInt = 86400
    conversation_retention: NonNegInt = 0
    archive_ttl: PositiveInt = 7 * 86400
    slow_ping_ms: PositiveFloat = 50.0
    cluster: bool = False
    min_replicas_ack: NonNegInt = 0
    # WAIT runs inside one guarded Redis call, whose socket timeout is 2 s: stay well below it.
    replica_ack_timeout: Annotated[float, Field(gt=0, le=1.5)] = 0.5

    @property
    def embedded(self) -> bool:
        """True when no URL is set, so Holdfast runs its own redis-server."""
        return not self.url


class MemoryConfig(_Section):
    """``[memory]``: long-term memory in LanceDB (every key is explained in ``config.toml``).

    ``top_k`` memories per prompt; ``min_similarity`` and ``dedup_similarity`` are cosine
    similarities (-1 to 1); ``index_threshold`` is in rows, ``optimize_every`` in write commits.
    """

    enabled: bool = True
    uri: str = ""
    embedding_provider: Literal["local", "openai", "lexical"] = "local"
    embedding_model: str = "all-MiniLM-L6-v2"
    top_k: PositiveInt = 5
    # Calibrated for all-MiniLM-L6-v2 on tests/memory/labelled.py (24 memories, 32 queries):
    # relevant pairs score 0.22-0.77 (most 0.4-0.65), unrelated queries at most 0.22. At 0.3
    # recall is 0.96 with no hit for any unrelated query; 0.35 loses a second fact, and the
    # spec's 0.7 recalls almost nothing with this model.
    min_similarity: Annotated[float, Field(ge=-1, le=1)] = 0.3
    dedup_similarity: Annotated[float, Field(gt=0, le=1)] = 0.95
    auto_remember: bool = True
    index_threshold: PositiveInt = 5000
    # Each write commit adds about one fragment; compacting every 50 keeps them well under 100.
    optimize_every: PositiveInt = 50


class ContextConfig(_Section):
    """``[context]``: the prompt's token budget and when history is summarised.

    ``max_prompt_tokens`` (0: the context window minus ``reserved_output_tokens``) and
    ``tool_output_preview_tokens`` are tokens; ``summarize_at``/``summarize_to`` are the high-
    and low-water marks as fractions (0-1] of the budget.
    """

    max_prompt_tokens: NonNegInt = 0
    reserved_output_tokens: NonNegInt = 1024
    summarize_at: Fraction = 0.8
    summarize_to: Fraction = 0.5
    tool_output_preview_tokens: PositiveInt = 200


class ServiceResilience(_Section):
    """One service's retry, circuit breaker, bulkhead and timeout settings (``[resilience.<service>]``).

    Every duration is in seconds: ``initial_delay``, ``max_delay``, ``deadline`` (all attempts
    of one call), ``retry_after_cap``, ``slow_call_seconds`` (0: off), ``recovery_timeout``,
    ``max_recovery_timeout``, ``probe_max_wait``, ``bulkhead_wait``, ``timeout`` (one
    attempt). ``window_size`` is calls (``count``) or seconds (``time``);
    ``failure_rate_threshold`` a fraction. ``config.toml`` explains each key.
    """

    # retry
    max_attempts: PositiveInt = 3
    initial_delay: NonNegFloat = 0.5
    max_delay: NonNegFloat = 60.0
    multiplier: Annotated[float, Field(ge=1)] = 2.0
    jitter: bool = True
    deadline: PositiveFloat = 120.0
    retry_after_cap: PositiveFloat = 60.0
    # circuit breaker
    failure_threshold: PositiveInt = 5
    failure_rate_threshold: Fraction = 0.5
    window_type: Literal["count", "time"] = "count"
    window_size: PositiveInt = 20
    minimum_calls: PositiveInt = 10
    slow_call_seconds: NonNegFloat = 0.0
    recovery_timeout: PositiveFloat = 30.0
    max_recovery_timeout: PositiveFloat = 300.0
    open_backoff: Annotated[float, Field(ge=1)] = 1.0
    success_threshold: PositiveInt = 3
    half_open_max_probes: PositiveInt = 1
    probe_max_wait: PositiveFloat = 30.0
    # bulkhead and timeout
    max_concurrent: PositiveInt = 32
    bulkhead_wait: NonNegFloat = 5.0
    timeout: PositiveFloat = 30.0


def _svc(**overrides: Any) -> Any:
    return Field(default_factory=lambda: ServiceResilience(**overrides))


class ResilienceConfig(_Section):
    """``[resilience]``: a :class:`ServiceResilience` per service (``llm``, ``redis``, ``memory``,
    ``embeddings``, ``tools``, ``mcp``: every MCP server's ``mcp:<name>`` guard), each with its own defaults."""

    # success_threshold 1: the health monitor's probe (or one call) closes it (issue 16).
    llm: ServiceResilience = _svc(max_attempts=5, initial_delay=2.0, timeout=120.0, deadline=180.0, success_threshold=1)
    redis: ServiceResilience = _svc(
        max_attempts=3,
        initial_delay=0.5,
        timeout=2.0,
        deadline=5.0,
        recovery_timeout=5.0,
        success_threshold=1,
        max_concurrent=256,
    )
    memory: ServiceResilience = _svc(
        max_attempts=2, initial_delay=0.2, timeout=5.0, deadline=10.0, recovery_timeout=10.0
    )
    embeddings: ServiceResilience = _svc(
        max_attempts=2, initial_delay=0.2, timeout=10.0, deadline=20.0, recovery_timeout=10.0
    )
    tools: ServiceResilience = _svc(max_attempts=3, initial_delay=1.0, timeout=30.0, deadline=60.0)
    # One attempt: a tool call may have side effects, and the tool's own guard (``tools``) already
    # retries a call that never reached the server (it was restarting).
    mcp: ServiceResilience = _svc(max_attempts=1, timeout=60.0, deadline=60.0, recovery_timeout=10.0)

    def for_service(self, service: str) -> ServiceResilience:
        """Settings of a service; ``tool:<name>`` uses ``tools``, unknown names the redis-free default."""
        base = service.split(":", 1)[0]
        if base == "tool":
            base = "tools"
        return getattr(self, base, None) or ServiceResilience()


class PluginsConfig(_Section):
    """``[plugins]``: where tools come from and what they may do.

    ``permissions`` maps a tool name to ``allow``/``ask``/``deny`` (others get
    ``default_permission``); ``max_output_tokens`` caps a tool result the model sees, in tokens.
    """

    paths: list[str] = Field(default_factory=list)
    include_builtin: bool = True
    disabled: list[str] = Field(default_factory=list)
    permissions: dict[str, Literal["allow", "ask", "deny"]] = Field(default_factory=dict)
    default_permission: Literal["allow", "ask", "deny"] = "allow"
    max_output_tokens: PositiveInt = 2000


McpPermission = Literal["allow", "ask", "deny"]

#: An MCP server's name: it prefixes its tools' names on a clash, so the model's name rules apply.
MCP_SERVER_NAME = r"^[a-zA-Z0-9_-]{1,32}$"


class McpServerConfig(_Section):
    """One ``[mcp.servers.NAME]``: an MCP tool server, started as a child process (``command``,
    ``args``, ``env``, ``cwd``: the stdio transport) or reached at ``url`` (streamable HTTP, with
    extra request ``headers``). Exactly one of ``command`` and ``url`` is set.

    ``timeout`` is the seconds one tool call may take (capped by ``[resilience.tools].timeout``);
    ``permission`` applies to every tool of the server and ``permissions`` overrides it per tool
    (the server's name for the tool); ``[plugins].permissions`` still wins by the registered name.
    """

    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str = ""
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    timeout: PositiveFloat = 30.0
    permission: McpPermission = "ask"
    permissions: dict[str, McpPermission] = Field(default_factory=dict)

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """``stdio`` when a command is set, else ``http``."""
        return "stdio" if self.command else "http"


class McpConfig(_Section):
    """``[mcp]``: MCP tool servers (``servers``, by name) and how they are started and restarted.

    Every duration is in seconds: ``start_timeout`` for a server to start, answer ``initialize``
    and list its tools; ``restart_delay`` before the first restart of a server that died, doubling
    up to ``restart_max_delay``; ``stop_timeout`` for a stdio server to exit once its stdin is
    closed, before it is terminated (then killed).
    """

    servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    start_timeout: PositiveFloat = 30.0
    restart_delay: PositiveFloat = 0.5
    restart_max_delay: PositiveFloat = 30.0
    stop_timeout: PositiveFloat = 2.0

    @field_validator("servers")
    @classmethod
    def _server_names(cls, value: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        for name, server in value.items():
            if not re.match(MCP_SERVER_NAME, name):
                raise ValueError(f"[mcp.servers.{name}]: a server name is 1-32 letters, digits, '_' or '-'")
            if bool(server.command) == bool(server.url):
                raise ValueError(
                    f"[mcp.servers.{name}] needs exactly one of command (a stdio server) and url (streamable HTTP)"
                )
        return value


def _optional_user_id(value: str, what: str) -> str:
    """``value`` checked as a user id (empty allowed: "use the default"); a bad one is a
    ValueError, which pydantic turns into a field error that _explain shows as is."""
    if value == "":
        return value
    try:
        return validate_user_id(value, what=what)
    except AppValidationError as exc:
        raise ValueError(exc.message) from exc


class AgentConfig(_Section):
    """``[agent]``: the user (empty: the OS user name), the system prompt, ``max_steps`` LLM calls per
    turn, and ``turn_lock_timeout`` seconds to wait for another process's turn on the conversation."""

    user: str = ""
    system_prompt: str = (
        "You are Holdfast, a helpful assistant in a terminal. Answer concisely. "
        "Use the tools you are given when they help."
    )
    max_steps: PositiveInt = 8
    turn_lock_timeout: PositiveFloat = 30.0

    @field_validator("user")
    @classmethod
    def _valid_user(cls, value: str) -> str:
        return _optional_user_id(value, "[agent].user")


class UIConfig(_Section):
    """``[ui]``: the TUI's theme, which panels show at start, and how much it renders."""

    theme: str = "textual-dark"
    show_sidebar: bool = True
    show_panels: bool = True
    max_rendered_messages: PositiveInt = 200
    #: Seconds between background health checks while the app runs (panels change within this).
    health_interval: PositiveFloat = 2.0


class LoggingConfig(_Section):
    """``[logging]``: level, file (empty: ``holdfast.log`` in ``log_dir``), rotation at ``max_bytes`` bytes."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = ""
    max_bytes: PositiveInt = 5_000_000
    backups: NonNegInt = 3


class ServerConfig(_Section):
    """``[server]``: ``holdfast serve``, the HTTP face (:mod:`runtime.serve`).

    ``environment = "development"`` adds the exception class and traceback (``debug``) to error
    bodies; never in production. ``host``/``port``/``workers`` are the defaults of the command's
    flags. Rate limits are per API key and per minute (0 switches one off), shared by every
    replica through Redis. ``grace_period`` seconds: how long SIGTERM lets running turns finish
    before they are cancelled (partial answers kept). ``idempotency_ttl`` seconds: how long a
    turn's result answers a retried ``Idempotency-Key``. ``local_user``: who the single local
    user is when no API key exists and the server is bound to loopback (empty: ``[agent].user``,
    else the OS user). ``health_interval`` seconds between the health monitor's probes of every
    backend: a call refused by a backend the last probe found down fails at once instead of
    retrying (issue 16's rule), so this bounds how long after a backend dies requests still
    spend their retries on it.
    """

    environment: Literal["development", "production"] = "production"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    workers: PositiveInt = 1
    requests_per_minute: NonNegInt = 600
    tokens_per_minute: NonNegInt = 0
    grace_period: NonNegFloat = 30.0
    idempotency_ttl: PositiveInt = 86400
    local_user: str = ""
    max_message_chars: PositiveInt = 100_000
    health_interval: PositiveFloat = 2.0

    @field_validator("local_user")
    @classmethod
    def _valid_local_user(cls, value: str) -> str:
        # Unchecked, a bad name started the server and then failed every request with a 400.
        return _optional_user_id(value, "[server].local_user")


class AlertsConfig(_Section):
    """``[alerts]``: webhooks told about 5xx errors, a breaker opening, the journal passing
    ``journal_threshold`` pending writes, and each recovery. ``webhooks`` get a plain JSON body,
    ``slack_webhooks`` Slack's ``{"text": ...}``. One alert per key (kind and service) per
    ``dedup_window`` seconds; each delivery is bounded by ``timeout`` seconds and runs in the
    background, so a failing webhook never slows or fails a request."""

    enabled: bool = True
    webhooks: list[str] = Field(default_factory=list)
    slack_webhooks: list[str] = Field(default_factory=list)
    dedup_window: NonNegFloat = 300.0
    journal_threshold: PositiveInt = 1000
    timeout: PositiveFloat = 5.0
    check_interval: PositiveFloat = 5.0

    @field_validator("webhooks", "slack_webhooks")
    @classmethod
    def _webhook_urls(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # Unchecked, a typo'd URL was accepted and every alert to it was silently lost.
        # The URL itself is not echoed: a Slack webhook URL is a secret.
        for number, url in enumerate(value, start=1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"[alerts].{info.field_name} entry {number} is not a webhook URL: "
                    "give an http:// or https:// URL with a host"
                )
        return value


class ModelPrice(_Section):
    """One model's price: ``input`` and ``output`` in ``[pricing].currency`` per million prompt
    and completion tokens."""

    input: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    output: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PricingConfig(_Section):
    """``[pricing]``: what replies cost, shown under each reply and summed per conversation.

    ``models`` maps a model name or glob pattern (``gpt-4o-mini*``, ``*/llama-3*``; matched
    without regard to case) to its :class:`ModelPrice`; a model's exact name wins, else the
    longest pattern that matches it. A model with no price shows no cost. ``currency`` is the
    code the prices are in (``USD`` shows as ``$``).
    """

    currency: str = "USD"
    models: dict[str, ModelPrice] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError(f"[pricing].currency must be a 3-letter currency code such as USD or EUR, got {value!r}")
        return value.upper()

    @field_validator("models")
    @classmethod
    def _patterns(cls, value: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        for pattern in value:
            if not pattern.strip() or len(pattern) > 200:
                raise ValueError(f"[pricing.models] {pattern!r}: a model name or glob pattern is 1-200 characters")
        return value

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of ``model`` (see the class doc for which entry wins), or None."""
        name = model.lower()
        best: tuple[int, ModelPrice] | None = None
        for pattern, price in self.models.items():
            key = pattern.lower()
            if key == name:
                return price
            if fnmatch.fnmatchcase(name, key) and (best is None or len(key) > best[0]):
                best = (len(key), price)
        return best[1] if best else None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What ``prompt_tokens`` in and ``completion_tokens`` out cost on ``model``, in
        ``currency``; None when the model has no price."""
        price = self.price_for(model)
        if price is None:
            return None
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


class Config(_Section):
    """The whole validated, immutable configuration; build it with :func:`load_config`."""

    llm: LLMConfig = Field(default_factory=LLMConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    context: ContextConfig = Field(default_factory=ContextConfig)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    mcp: McpConfig = Field(default_factory=McpConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    ui: UIConfig = Field(default_factory=UIConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    #: Where the user's data lives (journal, embedded Redis AOF, LanceDB); empty = platformdirs.
    data_dir: str = ""
    log_dir: str = ""

    @property
    def data_path(self) -> Path:
        """``data_dir`` with ``~`` expanded, else the platform's user data dir (``~/.local/share/holdfast``)."""
        return Path(self.data_dir).expanduser() if self.data_dir else Path(platformdirs.user_data_dir(APP_NAME))

    @property
    def log_path(self) -> Path:
        """The log file: ``[logging].file``, else ``holdfast.log`` in ``log_dir`` or the platform's user log dir."""
        if self.logging.file:
            return Path(self.logging.file).expanduser()
        base = Path(self.log_dir).expanduser() if self.log_dir else Path(platformdirs.user_log_dir(APP_NAME))
        return base / "holdfast.log"

    @property
    def memory_uri(self) -> str:
        """The LanceDB URI: ``[memory].uri``, else ``<data_path>/memory``."""
        return self.memory.uri or str(self.data_path / "memory")


@dataclass
class LoadedConfig:
    """The validated config and, per dotted key, the layer that set it."""

    config: Config
    sources: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def source_of(self, dotted: str) -> str:
        """Which layer set ``dotted`` (``"llm.model"``): a file path, ``environment``, ``command line``, ``default``."""
        return self.sources.get(dotted, "default")


# ---------------------------------------------------------------- loading


def user_config_path() -> Path:
    """The user config file: ``config.toml`` in the platform's user config dir (``~/.config/holdfast``)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """``HOLDFAST_LLM__MODEL=x`` -> ``{"llm": {"model": "x"}}``; plus the standard variables."""
    layer: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if "__" not in name:
            top = name[len(ENV_PREFIX) :].lower()
            if top in _TOP_LEVEL_SCALARS:  # HOLDFAST_DATA_DIR, HOLDFAST_LOG_DIR
                layer[top] = value
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if parts[0] in ("log", ""):  # HOLDFAST_LOG_LEVEL is handled below
            continue
        node = layer
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _env_value(value)
    if environ.get("HOLDFAST_LOG_LEVEL"):
        layer.setdefault("logging", {})["level"] = environ["HOLDFAST_LOG_LEVEL"].upper()
    if environ.get("OPENAI_BASE_URL"):
        llm = layer.setdefault("llm", {})
        llm.setdefault("base_url", environ["OPENAI_BASE_URL"])
        # A base URL with no explicit preset means a real endpoint, not the demo server.
        llm.setdefault("preset", "openai")
    if environ.get("REDIS_URL"):
        layer.setdefault("redis", {}).setdefault("url", environ["REDIS_URL"])
    return layer


_TOP_LEVEL_SCALARS = ("data_dir", "log_dir")


def _env_value(raw: str) -> Any:
    """Lists and tables may be given as JSON in the environment; everything else stays a string."""
    stripped = raw.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def _merge(
    base: dict[str, Any], layer: Mapping[str, Any], origin: str, sources: dict[str, str], prefix: str = ""
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, sources, dotted + ".")
        elif isinstance(value, Mapping):
            base[key] = {}
            _merge(base[key], value, origin, sources, dotted + ".")
        else:
            base[key] = value
            sources[dotted] = origin


def load_config(
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    repo_config: Path | None = REPO_CONFIG,
    user_config: Path | None = None,
) -> LoadedConfig:
    """Build the effective configuration from every layer (see the module docstring for the order).

    Args:
        config_file: the ``--config`` file, read after the user config.
        environ: the environment to read (default ``os.environ``).
        overrides: CLI flags as ``{"llm.model": value}``; None values are skipped.
        repo_config, user_config: the lower file layers (None skips the repo file; the user
            file defaults to :func:`user_config_path`); missing files are skipped.

    Raises:
        ConfigError: an unreadable or invalid TOML file, an unknown key, or an invalid value,
            in one line naming the source, the key, the value and what is allowed.
    """
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    files: list[Path] = []

    layers: list[tuple[str, dict[str, Any]]] = []
    user_path = user_config if user_config is not None else user_config_path()
    for path in (repo_config, user_path):
        if path is not None and path.is_file():
            layers.append((str(path), _read_toml(path)))
            files.append(path)
    if config_file is not None:
        path = Path(config_file).expanduser()
        layers.append((str(path), _read_toml(path)))
        files.append(path)
    layers.append(("environment", _env_layer(env)))
    if overrides:
        nested: dict[str, Any] = {}
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = nested
            *head, last = dotted.split(".")
            for part in head:
                node = node.setdefault(part, {})
            node[last] = value
        layers.append(("command line", nested))

    for origin, layer in layers:
        _check_unknown(layer, Config, origin, "")
        _merge(merged, layer, origin, sources)
    if overrides and overrides.get("agent.user") == "":
        # An empty [agent].user in a file means "the OS user"; an empty --user is a mistake.
        try:
            validate_user_id("", what="--user")
        except AppValidationError as exc:
            raise ConfigError(f"command line: {exc.message}") from exc

    try:
        config = Config.model_validate(merged)
    except PydanticValidationError as exc:
        raise ConfigError(_explain(exc, sources)) from exc
    return LoadedConfig(config=config, sources=sources, files=files)


# ---------------------------------------------------------------- error messages


def _check_unknown(layer: Mapping[str, Any], model: type[BaseModel], origin: str, prefix: str) -> None:
    fields = model.model_fields
    for key, value in layer.items():
        if key not in fields:
            known = sorted(fields)
            hint = difflib.get_close_matches(key, known, n=1)
            where = _display_key(prefix + key)
            suggestion = f'; did you mean "{hint[0]}"?' if hint else f" (known: {', '.join(known)})"
            raise ConfigError(f"{origin}: unknown key {where}{suggestion}")
        sub = _submodel(fields[key])
        if sub is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: {_display_key(prefix + key)} must be a table, got {_show(value)}")
            _check_unknown(value, sub, origin, f"{prefix}{key}.")
        table = _table_submodel(fields[key])
        if table is not None and isinstance(value, Mapping):
            for name, item in value.items():
                if not isinstance(item, Mapping):
                    raise ConfigError(f"{origin}: [{prefix}{key}.{name}] must be a table, got {_show(item)}")
                _check_unknown(item, table, origin, f"{prefix}{key}.{name}.")


def _submodel(info: FieldInfo) -> type[BaseModel] | None:
    ann = info.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _table_submodel(info: FieldInfo) -> type[BaseModel] | None:
    """The model of each entry of a ``dict[str, Model]`` field (``[mcp.servers.NAME]``), else None."""
    if get_origin(info.annotation) is not dict:
        return None
    value = get_args(info.annotation)[1]
    return value if isinstance(value, type) and issubclass(value, BaseModel) else None


def _display_key(dotted: str) -> str:
    """``llm.read_timeout`` -> ``[llm].read_timeout``; ``resilience.llm.timeout`` -> ``[resilience.llm].timeout``."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return parts[0]
    return f"[{'.'.join(parts[:-1])}].{parts[-1]}"


def _show(value: Any) -> str:
    # Any URL with credentials (redis://:pw@host, http://user:key@host) is shown without them.
    return mask_url_credentials(json.dumps(value, ensure_ascii=False, default=str))


def _field_for(loc: tuple[Any, ...]) -> FieldInfo | None:
    model: type[BaseModel] = Config
    info: FieldInfo | None = None
    entry_name = False
    for part in loc:
        if entry_name:  # the NAME of [mcp.servers.NAME]: the next part is a key of its model
            entry_name = False
            continue
        if not isinstance(part, str) or part not in model.model_fields:
            return info
        info = model.model_fields[part]
        sub = _submodel(info) or _table_submodel(info)
        if sub is not None:
            entry_name = sub is not _submodel(info)
            model = sub
    return info


def describe_allowed(info: FieldInfo) -> str:
    """What a field accepts, in words: ``a number > 0``, ``one of a, b``, ``true or false``."""
    ann = info.annotation
    args = [a for a in get_args(ann) if a is not type(None)]
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(ann))
    if ann is bool or (args and bool in args):
        return "true or false"
    bounds = []
    for meta in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{sym} {getattr(meta, attr)}")
    names = {int: "an integer", float: "a number", str: "a string"}
    if ann in names:
        base = names[ann]
    elif get_origin(ann) is list:
        base = "a list"
    elif get_origin(ann) is dict:
        base = "a table"
    else:
        base = "a valid value"
    return base + (" " + " and ".join(bounds) if bounds else "")


#: Settings whose command-line flag a message names instead of the config key.
_FLAGS = {"agent.user": "--user"}


def _explain(exc: PydanticValidationError, sources: dict[str, str]) -> str:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc if isinstance(p, str))
    # A whole table's error ([mcp.servers.NAME] without a command) comes from where its keys were set.
    origin = sources.get(dotted) or next((v for k, v in sources.items() if k.startswith(dotted + ".")), "default")
    if err["type"] == "missing":  # a table without a required key ([pricing.models.X] with no output)
        table = dotted.rpartition(".")[0]
        origin = next((v for k, v in sources.items() if k.startswith(table + ".")), origin)
        return f"{origin}: [{table}] needs {loc[-1]}"
    if err["type"] == "value_error":  # a field validator's own words (the user id rule)
        said = str(err.get("ctx", {}).get("error", err["msg"]))
        if origin == "command line" and dotted in _FLAGS:
            said = said.replace(_display_key(dotted), _FLAGS[dotted], 1)
        return f"{origin}: {said}"
    info = _field_for(loc)
    if info is not None and info.annotation is not None and _submodel(info) is None:
        allowed = describe_allowed(info)
        if get_origin(info.annotation) is dict and len(loc) > 2:
            allowed = "one of " + ", ".join(get_args(get_args(info.annotation)[1]))
    else:
        allowed = err["msg"].lower()
    return f"{origin}: {_display_key(dotted)} must be {allowed}, got {_show(err.get('input'))}"


# ---------------------------------------------------------------- display


def effective_items(loaded: LoadedConfig, environ: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(dotted key, displayed value, source) for every setting, secrets masked.

    ``api_key`` values go through :func:`mask_secret`; every other value is shown as JSON with
    the credentials of any URL in it hidden (:func:`runtime.core.safe_text.mask_url_credentials`),
    so ``REDIS_URL=redis://:pw@host/0`` prints as ``"redis://:****@host/0"``.
    """
    rows: list[tuple[str, str, str]] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            dotted = prefix + name
            if isinstance(value, BaseModel):
                walk(value, dotted + ".")
                continue
            if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
                for key, entry in value.items():  # [mcp.servers.NAME]
                    walk(entry, f"{dotted}.{key}.")
                continue
            if name in SECRET_TABLES and isinstance(value, dict):
                shown = _show({key: "****" for key in value})
            else:
                shown = mask_secret(value) if name in SECRET_KEYS else _show(value)
            rows.append((dotted, shown, loaded.source_of(dotted)))

    walk(loaded.config, "")
    key = loaded.config.llm.resolve_api_key(environ)
    env_name = loaded.config.llm.api_key_env
    rows.append(
        ("llm.api_key (resolved)", mask_secret(key), f"${env_name}" if key and not loaded.config.llm.api_key else "-")
    )
    return rows


def mask_secret(value: Any) -> str:
    """A secret made safe to print: its first 3 characters and its length when longer than 8, else ``"****"``."""
    text = str(value or "")
    if not text:
        return '""'
    return f'"{text[:3]}…{"*" * 4}" (set, {len(text)} chars)' if len(text) > 8 else '"****" (set)'
