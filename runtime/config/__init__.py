"""Typed settings: defaults < repo ``config.toml`` < user config < ``--config`` < env < flags.

Everything lives in :mod:`runtime.config.settings`; the names other layers use are re-exported
here. Depends only on :mod:`runtime.core`.
"""

from __future__ import annotations

from runtime.config.paths import StorageError, storage_error
from runtime.config.settings import (
    APP_NAME,
    ENV_PREFIX,
    PRESETS,
    REPO_CONFIG,
    AgentConfig,
    AlertsConfig,
    Config,
    ContextConfig,
    LLMConfig,
    LoadedConfig,
    LoggingConfig,
    McpConfig,
    McpServerConfig,
    MemoryConfig,
    PluginsConfig,
    RedisConfig,
    ResilienceConfig,
    ServerConfig,
    ServiceResilience,
    UIConfig,
    describe_allowed,
    effective_items,
    load_config,
    mask_secret,
    user_config_path,
)

__all__ = [
    "APP_NAME",
    "ENV_PREFIX",
    "PRESETS",
    "REPO_CONFIG",
    "AgentConfig",
    "AlertsConfig",
    "Config",
    "ContextConfig",
    "LLMConfig",
    "LoadedConfig",
    "LoggingConfig",
    "McpConfig",
    "McpServerConfig",
    "MemoryConfig",
    "PluginsConfig",
    "RedisConfig",
    "ResilienceConfig",
    "ServerConfig",
    "ServiceResilience",
    "StorageError",
    "UIConfig",
    "describe_allowed",
    "effective_items",
    "load_config",
    "mask_secret",
    "storage_error",
    "user_config_path",
]
