"""The data plane's actors: Raft groups, tails, the archiver and the observer.

Owns: the actor classes and the messages they exchange (`messages`). Every
actor runs in the node's in-process Thespian system (simpleSystemBase), driven
inline from greenlets; so a handler must never block or yield to the gevent
hub: I/O is done by greenlets that report back with messages. Must not:
import the node, the control plane's routing or the edge.
"""
