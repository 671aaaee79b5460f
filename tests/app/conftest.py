"""Fixtures for the app's Pilot tests; the helpers they share (config, ready, send) live in
``tests/support/app.py``."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from runtime.config import LoadedConfig
from tests.support.app import make_config

warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)


@pytest.fixture
def app_config(data_dir: Path, redis_url: str) -> LoadedConfig:
    """A config on the real Redis fixture with the demo LLM and fast breakers (see ``make_config``)."""
    return make_config(data_dir, redis_url)
