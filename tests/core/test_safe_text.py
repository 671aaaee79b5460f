"""Text from a model, a tool or a memory is printed in the order it is stored, with nothing hidden,
and no URL credential reaches a person: bidi overrides and zero-width characters are removed as
escapes are (the "Trojan Source" trick: U+202E makes ``txt.exe`` read ``exe.txt``), JSON output
keeps them as escapes, and ``user:password@`` is masked in every message, log and config line.
``tests/cli/test_storage_trust.py`` shows it end to end through ``holdfast chat``."""

from __future__ import annotations

import json
import logging

import pytest

from runtime.config import load_config
from runtime.config.settings import effective_items
from runtime.core.errors import ServiceUnavailableError, describe
from runtime.core.logs import redact
from runtime.core.safe_text import INVISIBLE, clean, escape_invisible, mask_url_credentials


@pytest.mark.parametrize(
    "hidden",
    ["\u202e", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f",
     "\u061c", "\u200b", "\u2060", "\ufeff"],
    ids=lambda c: f"U+{ord(c):04X}",
)  # fmt: skip
def test_bidi_and_zero_width_characters_are_removed(hidden: str) -> None:
    assert clean(f"invoice{hidden}gpj.exe") == "invoicegpj.exe"


def test_trojan_source_reads_as_stored() -> None:
    # Displayed by a bidi-aware terminal as "access granted: admin" if the overrides survive.
    sneaky = "access = \u202e}\u2066// check if admin\u2069 \u2066isAdmin = true"
    assert clean(sneaky) == "access = }// check if admin isAdmin = true"
    assert not set(clean(sneaky)) & set(INVISIBLE)


def test_escapes_and_controls_are_still_removed_and_scripts_keep_their_joiners() -> None:
    assert clean("\x1b]52;c;cGF5bG9hZA==\x07title\x1b[2Jok\x85\x00") == "titleok"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # ZWJ emoji sequence
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # ZWNJ is part of the spelling
    assert clean(family) == family and clean(persian) == persian
    assert clean("a\u2028b\u2029c\r\nd") == "a\nb\nc\nd"


def test_json_output_keeps_the_characters_as_escapes() -> None:
    text = json.dumps({"content": "rex\u202eexe\x85"}, ensure_ascii=False)
    safe = escape_invisible(text)
    assert "\u202e" not in safe and "\\u202e" in safe and "\\u0085" in safe
    assert json.loads(safe) == {"content": "rex\u202eexe\x85"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host/0", "redis://:****@host/0"),
        ("rediss://default:s3cr3t@cache.example.com:6380/1", "rediss://default:****@cache.example.com:6380/1"),
        ("http://u:sk-abcdefghijklmnopqrstuvwx@host/v1", "http://u:****@host/v1"),
        ("http://sk-abcdefghijklmnopqrstuvwx@host/v1", "http://****@host/v1"),
        ("http://alice@host/v1", "http://alice@host/v1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("write to bob@example.com", "write to bob@example.com"),
        ("redis://db:6379/0?password=hunter2", "redis://db:6379/0?password=****"),
        ("redis://db/0?db=1&Password=hunter2&ssl=true", "redis://db/0?db=1&Password=****&ssl=true"),
        ("http://host/v1?api_key=sk-abc123&x=1", "http://host/v1?api_key=****&x=1"),
        ("https://host/v1?key=AIzaSy123#frag", "https://host/v1?key=****#frag"),
        ("http://host/v1?monkey=1&keyboard=2", "http://host/v1?monkey=1&keyboard=2"),
    ],
)
def test_url_credentials_are_masked(url: str, shown: str) -> None:
    assert mask_url_credentials(f"failed at {url} twice") == f"failed at {shown} twice"


def test_errors_logs_and_config_never_carry_a_url_password(monkeypatch: pytest.MonkeyPatch) -> None:
    error = ServiceUnavailableError("cannot reach redis://:hunter2@db:6379/0")
    assert "hunter2" not in error.user_message() and "hunter2" not in describe(error)
    assert "hunter2" not in describe(ConnectionError("refused by http://u:hunter2@llm/v1"))
    assert "hunter2" not in redact(
        logging.LogRecord("x", logging.INFO, "", 0, "to %s", ("redis://:hunter2@db/0",), None).getMessage()
    )
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@db:6379/0")
    rows = {key: value for key, value, _ in effective_items(load_config())}
    assert rows["redis.url"] == '"redis://:****@db:6379/0"'
