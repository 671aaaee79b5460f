"""The local journal: durable appends, torn-tail repair, damaged records quarantined without
taking the others down, removal by id, shared by two writers."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from runtime.config import StorageError
from runtime.state.journal import Journal
from tests.support.storage import fill, need_tmpfs, tmpfs


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


def test_a_corrupted_last_line_is_quarantined_not_dropped_silently(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"op": "a", "i": 0})
    journal.append({"op": "a", "i": 1})
    data = journal.path.read_bytes()
    journal.path.write_bytes(data.replace(b'"i":1', b'"i":7'))
    assert [r["i"] for r in journal.records()] == [0]
    [damaged] = journal.take_quarantined()
    assert (damaged.line, damaged.reason) == (2, "checksum mismatch")
    assert b'"i":7' in base64.b64decode(_quarantine(journal)[0]["raw_base64"])


def _quarantine(journal: Journal) -> list[dict[str, object]]:
    return [json.loads(line) for line in journal.quarantine_path.read_text().splitlines()]


def test_a_flipped_byte_in_line_5_of_10_costs_only_that_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path, clock=lambda: 1234.5)
    for i in range(10):
        journal.append({"op": "append", "i": i, "text": f"message {i}"})
    data = bytearray(journal.path.read_bytes())
    line5 = data.split(b"\n")[4]
    offset = sum(len(line) + 1 for line in data.split(b"\n")[:4])
    data[offset + line5.index(b"message 4") + 3] ^= 0x01  # one bit of one byte in line 5
    journal.path.write_bytes(bytes(data))

    records = journal.records()

    assert [r["i"] for r in records] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    [damaged] = journal.take_quarantined()
    assert (damaged.line, damaged.offset, damaged.size, damaged.reason) == (5, offset, len(line5), "checksum mismatch")
    assert journal.take_quarantined() == []  # reported once
    [entry] = _quarantine(journal)
    assert entry["line"] == 5 and entry["offset"] == offset and entry["journal"] == str(journal.path)
    assert entry["quarantined_at"] == 1234.5 and entry["reason"] == "checksum mismatch"
    assert base64.b64decode(str(entry["raw_base64"])) == bytes(data).split(b"\n")[4]
    # The journal now holds the nine good records; nobody finds (and reports) the bad one again.
    assert [r["i"] for r in Journal(tmp_path).records()] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert len(_quarantine(journal)) == 1


def test_damage_and_a_torn_tail_together(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for i in range(3):
        journal.append({"op": "a", "i": i})
    data = journal.path.read_bytes().replace(b'"i":0', b'"i":9')
    journal.path.write_bytes(data + b'{"jid":"x","op":"a","i":3')  # a crash cut the last append
    assert [r["i"] for r in journal.records()] == [1, 2]
    assert [q.line for q in journal.take_quarantined()] == [1]  # the torn tail is not "damage"
    journal.append({"op": "a", "i": 4})
    assert [r["i"] for r in Journal(tmp_path).records()] == [1, 2, 4]


def test_a_record_that_only_lost_its_newline_is_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"op": "a", "i": 0})
    journal.append({"op": "a", "i": 1})
    journal.path.write_bytes(journal.path.read_bytes()[:-1] + b"X")  # the final newline flipped
    assert [r["i"] for r in journal.records()] == [0, 1]
    assert journal.take_quarantined() == []
    journal.append({"op": "a", "i": 2})
    assert [r["i"] for r in Journal(tmp_path).records()] == [0, 1, 2]


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


def _lines(journal: Journal) -> list[bytes]:
    return journal.path.read_bytes().split(b"\n")[:-1]


def test_a_flipped_newline_joins_two_lines_and_both_records_are_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for i in range(10):
        journal.append({"op": "append", "i": i, "text": f"message {i}"})
    data = bytearray(journal.path.read_bytes())
    data[len(b"\n".join(_lines(journal)[:4]))] = ord("J")  # the newline ending line 4

    journal.path.write_bytes(bytes(data))

    assert [r["i"] for r in journal.records()] == list(range(10))
    [damaged] = journal.take_quarantined()
    assert (damaged.line, damaged.reason) == (4, "checksum mismatch; 2 intact record(s) on the line kept")
    assert [r["i"] for r in Journal(tmp_path).records()] == list(range(10))  # repaired on disk
    assert len(_lines(journal)) == 10


def test_one_damaged_record_glued_to_a_good_one_costs_only_itself(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for i in range(4):
        journal.append({"op": "a", "i": i})
    lines = _lines(journal)
    # Line 2's CRC digit flipped and its newline gone: record 1 is lost, record 2 is not.
    joined = lines[1][:-1] + (b"0" if lines[1][-1:] != b"0" else b"1") + lines[2]
    journal.path.write_bytes(b"\n".join([lines[0], joined, lines[3]]) + b"\n")

    assert [r["i"] for r in journal.records()] == [0, 2, 3]
    assert [(q.line, q.reason) for q in journal.take_quarantined()] == [
        (2, "checksum mismatch; 1 intact record(s) on the line kept")
    ]


def test_an_append_after_a_crash_mid_write_is_not_glued_to_the_torn_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"op": "a", "i": 0})
    intact = journal.path.read_bytes()
    journal.path.write_bytes(intact + b'{"jid":"x","op":"a","i":1')  # a crash cut this append

    Journal(tmp_path).append({"op": "a", "i": 2})  # the next process appends before anyone read

    assert [r["i"] for r in Journal(tmp_path).records()] == [0, 2]
    assert journal.take_quarantined() == [] and not journal.quarantine_path.exists()


def test_a_torn_fragment_glued_to_the_next_append_by_an_older_version_costs_only_itself(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"op": "a", "i": 0})
    journal.append({"op": "a", "i": 2})
    first, second = _lines(journal)
    journal.path.write_bytes(first + b"\n" + b'{"jid":"x","op":"a","i":1' + second + b"\n")

    assert [r["i"] for r in journal.records()] == [0, 2]
    [damaged] = journal.take_quarantined()
    assert damaged.line == 2 and damaged.reason.endswith("1 intact record(s) on the line kept")


def test_a_last_record_that_lost_only_its_newline_is_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"op": "a", "i": 0})
    journal.append({"op": "a", "i": 1})
    journal.path.write_bytes(journal.path.read_bytes()[:-1])  # the final newline never reached the disk

    assert [r["i"] for r in journal.records()] == [0, 1]
    assert journal.take_quarantined() == []
    journal.append({"op": "a", "i": 2})
    assert [r["i"] for r in Journal(tmp_path).records()] == [0, 1, 2]


def test_an_append_the_disk_could_take_only_part_of_is_an_error_and_leaves_no_partial_line(tmp_path: Path) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "disk", size="64k") as disk:
        journal = Journal(disk / "journal")
        i = 0
        while not journal.path.exists() or journal.path.stat().st_size < 3900:
            journal.append({"op": "a", "i": i})
            i += 1
        before = journal.path.read_bytes()
        fill(disk)  # the journal's last page has room for part of a record, the disk for nothing more

        with pytest.raises(StorageError, match=r"cannot write the local journal .*: the disk is full"):
            journal.append({"op": "a", "i": i, "text": "x" * 400})

        assert journal.path.read_bytes() == before  # nothing claims to be saved that was not
        (disk / "fill").unlink()
        journal.append({"op": "a", "i": i + 1})
        assert [r["i"] for r in Journal(disk / "journal").records()] == [*range(i), i + 1]
        assert not journal.quarantine_path.exists()
