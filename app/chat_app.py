"""The Holdfast Textual app (placeholder screen until the chat UI lands)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static

from app.main import install_exit_signals
from runtime.config import LoadedConfig
from runtime.state.embedded_redis import EmbeddedRedis


class HoldfastApp(App[int]):
    TITLE = "Holdfast"
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def __init__(self, loaded: LoadedConfig) -> None:
        super().__init__()
        self.loaded = loaded
        self.redis: EmbeddedRedis | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Starting backends…", id="status")
        yield Footer()

    async def on_mount(self) -> None:
        install_exit_signals(self)
        cfg = self.loaded.config
        status = self.query_one("#status", Static)
        if cfg.redis.url:
            status.update(f"Redis: {cfg.redis.url}")
            return
        self.redis = EmbeddedRedis(cfg.data_path / "redis", port=cfg.redis.embedded_port,
                                   startup_timeout=cfg.redis.startup_timeout)
        try:
            address = await self.redis.astart()
        except Exception as exc:  # shown, never a crash: the app runs degraded
            status.update(f"Redis unavailable: {exc}")
            return
        status.update(f"Embedded redis-server pid {self.redis.pid} on {address.host}:{address.port}")

    async def on_unmount(self) -> None:
        if self.redis is not None:
            self.redis.stop()
