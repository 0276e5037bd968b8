"""Per-request access decisions, the same calls whether auth is on or off.

Owns: `Access`, which resources consult (scope, session lock, tenant fence,
actor, creator) and `build_gate(config)`, which turns a request's bearer
token into an `Access` and says when a tail opened with it must close. With
``auth_mode = none`` the context is `policy.NO_AUTH`: every check passes and
nothing is injected. Must not: verify signatures or decide policy itself
(`starcite.api.auth.tokens` verifies, `starcite.api.auth.policy` decides) or read session state.
"""

from starcite.api.auth import policy, tokens as auth


class Access:
    """The caller's rights: thin wrappers over the `auth` policy helpers."""

    def __init__(self, ctx: policy.AuthContext = policy.NO_AUTH):
        self.ctx = ctx

    @property
    def enabled(self) -> bool:
        return self.ctx.kind != "none"

    def scope(self, scope: str):
        policy.require_scope(self.ctx, scope)

    def session(self, record: dict):
        """The session lock and the tenant fence for an existing session record."""
        policy.require_session(self.ctx, record["id"])
        policy.require_tenant(self.ctx, (record.get("metadata") or {}).get("tenant_id"))

    def manage(self, record_of):
        """PATCH, archive and unarchive of an existing session: the scope that manages sessions
        (`policy.MANAGE_SCOPE`), then the session lock and the tenant fence of ``record_of()``'s record."""
        policy.require_scope(self.ctx, policy.MANAGE_SCOPE)
        self.session(record_of())

    def create_metadata(self, metadata: dict) -> dict:
        return policy.fence_create_metadata(self.ctx, metadata)

    def create_session_id(self, session_id):
        policy.require_create_session(self.ctx, session_id)

    def issuer(self):
        """`/v1/auth/issue`: a service token holding `auth:issue`."""
        policy.require_service(self.ctx)
        policy.require_scope(self.ctx, "auth:issue")

    def actor(self, requested):
        return policy.resolve_actor(self.ctx, requested)

    def creator(self):
        return policy.creator_principal(self.ctx)

    def tenant(self):
        return self.ctx.tenant_id

    def locked_sessions(self):
        return self.ctx.session_ids


OPEN = Access()


class OpenGate:
    """auth_mode = none."""

    authenticator = None

    def access(self, token):
        return OPEN

    def expires_at(self, access):
        return None


class JwtGate:
    """auth_mode = jwt: every /v1 request needs a valid bearer token.

    Built inside the worker (after gevent's patching): the first JWKS fetch
    happens here, and a JWKS endpoint that is down only logs a warning (the
    node starts; tokens are 401 until keys arrive, see `jwks.JwksCache`).
    """

    def __init__(self, config):
        self.leeway = config.auth_leeway_seconds
        self.authenticator = auth.Authenticator(config)
        self.authenticator.start()

    def access(self, token):
        return Access(self.authenticator.authenticate(token))

    def expires_at(self, access):
        """When a tail opened with this token closes with 4001 token_expired.

        At ``exp + leeway``: the first instant at which the same token would
        be refused with 401 on a new request or upgrade. Closing at bare
        ``exp`` would let a client reconnect successfully with the token that
        just "expired" its socket, and be closed again at once, for the whole
        leeway window.
        """
        return access.ctx.expires_at + self.leeway


def build_gate(config):
    return JwtGate(config) if config.auth_mode == "jwt" else OpenGate()
