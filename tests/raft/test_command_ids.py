"""The ids pysyncobj gives the session state machine's Raft commands stay those earlier builds wrote.

Owns: the guard that a journal written by an earlier build replays with the
same methods. pysyncobj numbers the replicated methods of its consumers in
the order of their names (all at version 0), and a journal entry names its
method by that number: a new command whose name sorts before an existing
one would renumber it, and an old journal would replay the wrong method.
Must not: start Raft.
"""

from starcite.actors.raft_group import SessionStateMachine

# (name, id) of every command, in the order of their ids; the first three are what the builds before
# PATCH (2026-12) wrote. Append new commands so that their names sort after every existing one.
COMMAND_IDS = [("ack_archived", 0), ("append_events", 1), ("create_session", 2), ("delete_session", 3),
               ("expire_sessions", 4), ("forget_deleted", 5), ("patch_session", 6), ("set_archived", 7)]


def replicated_names(machine):
    """The names of ``machine``'s replicated methods, in pysyncobj's numbering order."""
    names = [name for name in dir(machine)
             if getattr(getattr(machine, name), "replicated", False) and name != getattr(machine, name).origName]
    return [getattr(machine, name).origName for name in sorted(names)]


def test_every_command_keeps_its_id():
    names = replicated_names(SessionStateMachine(None, None))
    assert list(enumerate(names)) == [(number, name) for name, number in COMMAND_IDS]
