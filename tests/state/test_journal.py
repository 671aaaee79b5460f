"""The local journal: durable appends, torn-tail repair, removal by id, shared by two writers."""

from __future__ import annotations

import threading
from pathlib import Path

from runtime.state.journal import Journal


def test_records_come_back_in_order_from_a_new_instance(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    for i in range(5):
        journal.append({"op": "append", "i": i, "text": 'quote" newline\n 中文'})
    reopened = Journal(tmp_path / "j")  # as after an app restart
    records = reopened.records()
    assert [r["i"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0]["text"] == 'quote" newline\n 中文'
    assert len({r["jid"] for r in records}) == 5


def test_a_torn_last_record_is_dropped_and_cut_off(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"op": "a", "i": 0})
    journal.append({"op": "a", "i": 1})
    intact = journal.path.read_bytes()
    # A crash mid-write leaves half a line with no newline.
    journal.path.write_bytes(intact + b'{"jid":"x","op":"a","i":2')
    assert [r["i"] for r in journal.records()] == [0, 1]
    assert journal.path.read_bytes() == intact
    journal.append({"op": "a", "i": 3})
    assert [r["i"] for r in Journal(tmp_path).records()] == [0, 1, 3]


def test_a_corrupted_line_fails_its_checksum(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"op": "a", "i": 0})
    journal.append({"op": "a", "i": 1})
    data = journal.path.read_bytes()
    journal.path.write_bytes(data.replace(b'"i":1', b'"i":7'))
    assert [r["i"] for r in journal.records()] == [0]


def test_remove_by_id_keeps_records_added_meanwhile(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    replayed = {journal.append({"op": "a", "i": i})["jid"] for i in range(3)}
    journal.append({"op": "a", "i": 3})  # written by someone else during the replay
    assert journal.remove(replayed) == 1
    assert [r["i"] for r in journal.records()] == [3]
    assert journal.remove({r["jid"] for r in journal.records()}) == 0
    assert journal.records() == [] and journal.path.read_bytes() == b""


def test_two_writers_on_one_directory_lose_nothing(tmp_path: Path) -> None:
    a, b = Journal(tmp_path), Journal(tmp_path)

    def write(journal: Journal, who: str) -> None:
        for i in range(200):
            journal.append({"op": "a", "who": who, "i": i})

    threads = [threading.Thread(target=write, args=(a, "a")), threading.Thread(target=write, args=(b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = Journal(tmp_path).records()
    assert len(records) == 400
    for who in "ab":
        assert [r["i"] for r in records if r["who"] == who] == list(range(200))
