"""The TUI tells the user, once, that a damaged record of the local journal was moved to
quarantine, and shows every good record written while Redis was down: a real journal (written
the way the conversation store writes it with Redis out) with one flipped byte, the real Redis
fixture, the whole app under Pilot."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from runtime.config import LoadedConfig
from tests.support.app import make_config, ready
from tests.support.polling import wait_for
from tests.support.storage import flip_line, journal_while_redis_is_down

pytestmark = [pytest.mark.ui, pytest.mark.slow]


async def test_a_damaged_journal_record_is_reported_once_and_the_others_are_replayed(
    data_dir: Path, redis_url: str
) -> None:
    conv = await journal_while_redis_is_down(data_dir / "journal", user="tester", messages=4)
    flip_line(data_dir / "journal" / "redis-journal.jsonl", 3, b"message 2", b"messagE 2")
    config: LoadedConfig = make_config(data_dir, redis_url)

    app = HoldfastApp(config)
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot)

        def told() -> list[str]:
            return [str(n.message) for n in app._notifications if "damaged record" in str(n.message)]

        await wait_for(lambda: bool(told()), what="the journal damage notification", pause=pilot.pause)
        assert told() == [
            f"1 damaged record(s) of the local journal {data_dir / 'journal' / 'redis-journal.jsonl'} (line 3) "
            f"moved to {data_dir / 'journal' / 'redis-journal.quarantine.jsonl'}; every other record is kept"
        ]
        assert app.rt is not None
        messages = await app.rt.read_messages(conv, 10)
        assert [m.content for m in messages if m.role == "user"] == ["message 1", "message 3", "message 4"]
        assert app.rt.store_status().pending_writes == 0  # every good record reached Redis
