"""`DurableFileJournal`: pysyncobj's journal file format with entries on disk only.

Owns: proving that indexing, slicing, truncation from either end and reopening
behave as pysyncobj's own `FileJournal` (which reads our files back
unchanged), and that what the journal holds in memory (`held_bytes`) stays
bounded once synced. Must not: start a Raft group (tests/raft/test_safety.py
covers the journal under pysyncobj).
"""

from pysyncobj.journal import FileJournal

from starcite.actors.raft_journal import RESIDENT_LOG_BYTES, DurableFileJournal


def command(idx):
    return bytes([idx % 251]) * (idx % 700)


def filled(path, count):
    journal = DurableFileJournal(str(path))
    journal.fsync = False
    for idx in range(1, count + 1):
        journal.add(command(idx), idx, 1 + idx // 1000)
        if idx % 50 == 0:
            journal.sync()
    journal.sync()
    return journal


def test_entries_read_back_from_the_file_as_pysyncobj_sees_them(tmp_path):
    journal = filled(tmp_path / "j", 20_000)
    entry = lambda idx: (command(idx), idx, 1 + idx // 1000)
    assert len(journal) == 20_000
    assert journal[0] == entry(1) and journal[-1] == entry(20_000) and journal[4_999] == entry(5_000)
    assert journal[10:13] == [entry(11), entry(12), entry(13)] and journal[-2:] == [entry(19_999), entry(20_000)]
    assert journal[5:2] == [] and journal[19_999:30_000] == [entry(20_000)]
    journal.deleteEntriesFrom(19_990)
    journal.deleteEntriesTo(10_000)
    assert len(journal) == 9_990 and journal[0] == entry(10_001) and journal[-1] == entry(19_990)
    journal.add(b"next", 19_991, 99)
    assert journal[-1] == (b"next", 19_991, 99)
    journal._destroy()
    stock = FileJournal(str(tmp_path / "j"))
    assert len(stock) == 9_991 and stock[0] == entry(10_001) and stock[-2] == entry(19_990)
    stock._destroy()
    again = DurableFileJournal(str(tmp_path / "j"))
    assert len(again) == 9_991 and again[-1] == (b"next", 19_991, 99) and again[123] == entry(10_124)
    again._destroy()


def test_synced_journal_holds_little_memory(tmp_path):
    journal = filled(tmp_path / "j", 20_000)  # about 7 MB of records
    assert journal.held_bytes <= 2 * RESIDENT_LOG_BYTES + 8 * len(journal)
    journal.clear()
    assert len(journal) == 0 and journal.held_bytes == 0
    journal._destroy()
