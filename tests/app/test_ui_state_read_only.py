"""Holdfast on a read-only data dir (a real tmpfs remounted read-only): the parts that write into
the data dir besides the journal say so in the log and keep the app running. Found by the storage
issue's break test: the TUI died with a traceback on its first message, because saving the input
history failed and so did removing its temp file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app import ui_state
from tests.support.storage import need_tmpfs, read_only, tmpfs


def test_saving_the_ui_state_on_a_read_only_data_dir_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "ro") as data:
        read_only(data)
        with caplog.at_level(logging.WARNING, logger="app.ui_state"):
            ui_state.save(data, ui_state.UiState(sidebar=True, history={"alice": ["hello"]}))
        assert not any(data.iterdir())
    assert any("could not save UI state" in r.getMessage() and "Read-only" in r.getMessage() for r in caplog.records)
