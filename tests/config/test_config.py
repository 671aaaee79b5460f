"""Configuration: layering, sources, and one-line errors for bad input."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from runtime.cli.main import main
from runtime.config import REPO_CONFIG, Config, McpServerConfig, ServiceResilience, load_config
from runtime.core.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_any_file() -> None:
    loaded = load_config(repo_config=None, environ={})
    assert loaded.config.llm.preset == "demo"
    assert loaded.config.resilience.llm.max_attempts == 5  # the spec's llm retry default
    assert loaded.config.resilience.tools.initial_delay == 1.0
    assert loaded.source_of("llm.model") == "default"


def test_precedence_file_then_env_then_cli(tmp_path: Path) -> None:
    user = write(tmp_path, '[llm]\nmodel = "from-user"\ntemperature = 0.1\n', "user.toml")
    extra = write(tmp_path, '[llm]\nmodel = "from-flag-file"\n', "extra.toml")
    loaded = load_config(
        repo_config=None, user_config=user, config_file=extra, environ={"HOLDFAST_LLM__MODEL": "from-env"}
    )
    assert loaded.config.llm.model == "from-env"
    assert loaded.config.llm.temperature == 0.1
    assert loaded.source_of("llm.temperature") == str(user)
    loaded = load_config(
        repo_config=None,
        user_config=user,
        config_file=extra,
        environ={"HOLDFAST_LLM__MODEL": "from-env"},
        overrides={"llm.model": "from-cli"},
    )
    assert loaded.config.llm.model == "from-cli"
    assert loaded.source_of("llm.model") == "command line"


def test_standard_environment_variables() -> None:
    loaded = load_config(
        repo_config=None,
        environ={
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "OPENAI_API_KEY": "sk-test",
            "HOLDFAST_LOG_LEVEL": "debug",
            "HOLDFAST_RESILIENCE__LLM__MAX_ATTEMPTS": "2",
        },
    )
    cfg = loaded.config
    assert cfg.llm.effective_base_url == "http://127.0.0.1:9/v1"
    assert cfg.llm.preset == "openai"  # a real endpoint, not the demo server
    assert cfg.redis.url == "redis://127.0.0.1:1/0" and not cfg.redis.embedded
    assert cfg.llm.resolve_api_key({"OPENAI_API_KEY": "sk-test"}) == "sk-test"
    assert cfg.logging.level == "DEBUG"
    assert cfg.resilience.llm.max_attempts == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[llm]\nread_timeout = "abc"\n', '[llm].read_timeout must be a number > 0, got "abc"'),
        ("[llm]\nread_timeout = -1\n", "[llm].read_timeout must be a number > 0, got -1"),
        ('[llm]\npreset = "gpt"\n', "[llm].preset must be one of openai, ollama, vllm, llamacpp, lmstudio, demo"),
        ('[llm]\nmodle = "x"\n', 'unknown key [llm].modle; did you mean "model"?'),
        ('[lm]\nmodel = "x"\n', 'unknown key lm; did you mean "llm"?'),
        ("[resilience.llm]\nmax_attempts = 0\n", "[resilience.llm].max_attempts must be an integer >= 1, got 0"),
        ("[resilience.lm]\ntimeout = 1\n", 'unknown key [resilience].lm; did you mean "llm"?'),
        ('[memory]\nenabled = "maybe"\n', '[memory].enabled must be true or false, got "maybe"'),
        (
            '[plugins]\npermissions = { shell = "sometimes" }\n',
            "[plugins.permissions].shell must be one of allow, ask, deny",
        ),
        ("llm = 3\n", "llm must be a table, got 3"),
        ("[llm\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(repo_config=None, config_file=path, environ={})
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith(str(path))
    assert message in line


def test_bad_env_value_names_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"^environment: \[llm\].temperature must be a number >= 0 and <= 2"):
        load_config(repo_config=None, environ={"HOLDFAST_LLM__TEMPERATURE": "9"})


def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[llm]\nread_timeout = "abc"\n')
    assert main(["--config", str(path), "config"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f'holdfast: {path}: [llm].read_timeout must be a number > 0, got "abc"']
    assert "Traceback" not in err


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "config"]) == 2
    assert "file not found" in capsys.readouterr().err


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= _keys(ann, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_repo_config_documents_every_key_with_its_default() -> None:
    text = REPO_CONFIG.read_text()
    data = tomllib.loads(text)
    documented: set[str] = set()

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and key not in ("permissions", "servers", "models"):
                walk(value, f"{prefix}{key}.")
            else:
                documented.add(prefix + key)

    walk(data, "")
    optional = {"llm.supports_tools"}  # unset means "the preset decides"; documented as a comment
    assert "# supports_tools" in text
    expected = {k for k in _keys(Config) if not k.startswith("resilience.")} - optional
    assert expected <= documented, f"undocumented keys: {sorted(expected - documented)}"
    service_keys = {f"resilience.llm.{k}" for k in ServiceResilience.model_fields}
    assert service_keys <= documented, f"undocumented: {sorted(service_keys - documented)}"
    # [mcp.servers.NAME] is a table of tables: a commented example shows every key of one server.
    example = {k for k in McpServerConfig.model_fields if not re.search(rf"^#\s+{k} = ", text, re.MULTILINE)}
    assert not example, f"keys missing from the [mcp.servers.NAME] example: {sorted(example)}"
    # The file states the defaults: loading it changes nothing.
    assert load_config(repo_config=REPO_CONFIG, environ={}).config == load_config(repo_config=None, environ={}).config


def test_config_command_masks_secrets_and_shows_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-abcdefghijklmnopqrstuvwxyz123456"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    path = write(tmp_path, f'[llm]\napi_key = "{secret}"\nmodel = "m1"\n')
    assert main(["--config", str(path), "config"]) == 0
    out = capsys.readouterr().out
    assert secret not in out
    assert "(set, " in out
    model_line = next(line for line in out.splitlines() if line.startswith("llm.model "))
    assert '"m1"' in model_line and str(path) in model_line
    assert "log file:" in out
