"""Raft snapshots written before the pure core moved (`starcite.rules` -> `starcite.core.rules`) still load.

Owns: the check that a state machine pickled under the old module path, as
pysyncobj writes it into a snapshot, unpickles to the same state once the Raft
group module is imported (`starcite.actors.raft_group` keeps the old path as an
alias). Must not: start a Raft group or a node.
"""

import pickle

from pysyncobj import pickle as pysyncobj_pickle

import starcite.actors.raft_group  # noqa: F401 (keeps the old module path loadable)
from tests.rules.helpers import append_many, dump, new_group


def test_a_snapshot_naming_the_old_rules_module_loads_the_same_state():
    group = new_group()
    append_many(group, 3)
    written = pickle.dumps(group, protocol=2)
    assert b"starcite.core.rules" in written
    old = written.replace(b"starcite.core.rules", b"starcite.rules")
    restored = pysyncobj_pickle.loads(old)
    assert dump(restored) == dump(group)
    assert type(restored) is type(group)
