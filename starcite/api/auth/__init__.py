"""Auth at the edge: who is calling and what they may do.

Owns: `tokens` (reading, verifying and minting JWTs), `jwks` (the identity
provider's keys, cached), `policy` (scopes and the pure checks) and `access`
(the per-request decision resources consult). Must not: import the web
framework's app or touch sessions and storage.
"""
