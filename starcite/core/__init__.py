"""The pure core: the session rules, the shapes requests must have, and the one error type.

Owns: `rules` (what an append, a create or an archive acknowledgement does to
a group's state: the Raft state machine only calls it), `shapes` (declarative
checks of JSON bodies) and `errors` (`StarciteError`, rendered as
``{"error","message"}``). Pure: no I/O, no clock, no threads, no imports from
any other room of `starcite`. Must not: know about Raft, actors, HTTP or the
archive.
"""
