"""What a node tells its operator: logs, metrics and the redaction of secrets from both.

Owns: `logs` (text or JSON lines, the per-request log context),
`metrics` (every Prometheus metric of a node) and `redact` (the one rule that
keeps `access_token` values out of anything logged). Must not: import the
edge (`starcite.api`) or the node: both use this room, never the reverse.
"""
