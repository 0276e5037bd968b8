"""A node's settings: the config file, the `STARCITE_*` environment, and the data directory's layout.

Owns: `settings` (every setting, its default, bounds, env var and key, and
the `Config` a node runs with) and `data_layout` (the record that refuses a
start whose settings would misplace existing data). Must not: start anything
or import the node, the edge or gevent.
"""
