"""Per-request access decisions, the same calls whether auth is on or off.

Owns: `Access`, which resources consult (scope, session lock, tenant fence,
actor, creator) and `build_gate(config)`, which turns a request's bearer
token into an `Access`. With ``auth_mode = none`` every check passes and
nothing is injected. Must not: verify signatures itself (that is
`starcite.api.auth`) or read session state.
"""

from starcite.api.errors import ApiError


class Access:
    """The caller's rights; ``ctx`` is None when auth is off."""

    def __init__(self, ctx=None):
        self.ctx = ctx

    @property
    def enabled(self) -> bool:
        return self.ctx is not None

    def scope(self, scope: str):
        if self.ctx is not None:
            from starcite.api import auth
            auth.require_scope(self.ctx, scope)

    def session(self, record: dict):
        """The session lock and the tenant fence for an existing session record."""
        if self.ctx is not None:
            from starcite.api import auth
            auth.require_session(self.ctx, record["id"])
            auth.require_tenant(self.ctx, (record.get("metadata") or {}).get("tenant_id"))

    def create_metadata(self, metadata: dict) -> dict:
        if self.ctx is None:
            return metadata
        from starcite.api import auth
        return auth.fence_create_metadata(self.ctx, metadata)

    def create_session_id(self, session_id):
        if self.ctx is not None and session_id is not None:
            from starcite.api import auth
            auth.require_session(self.ctx, session_id)

    def actor(self, requested):
        if self.ctx is None:
            return requested
        from starcite.api import auth
        return auth.resolve_actor(self.ctx, requested)

    def creator(self):
        if self.ctx is None:
            return None
        from starcite.api import auth
        return auth.creator_principal(self.ctx)

    def tenant(self):
        return None if self.ctx is None else self.ctx.tenant_id

    def locked_sessions(self):
        return None if self.ctx is None else self.ctx.session_ids


OPEN = Access(None)


class OpenGate:
    """auth_mode = none."""

    def access(self, token):
        return OPEN

    def expires_at(self, access):
        return None


class JwtGate:
    """auth_mode = jwt: every /v1 request needs a valid bearer token."""

    def __init__(self, config):
        from starcite.api import auth
        self.auth = auth
        self.jwks = auth.JwksCache(config.auth_jwks_url, config.auth_jwks_refresh_ms)
        self.jwks.start()
        self.authenticator = auth.Authenticator(config, self.jwks)

    def access(self, token):
        if not token:
            raise ApiError(401, "unauthorized", "Missing bearer token", {"WWW-Authenticate": "Bearer"})
        return Access(self.authenticator.authenticate(token))

    def expires_at(self, access):
        return access.ctx.expires_at


def build_gate(config):
    return JwtGate(config) if config.auth_mode == "jwt" else OpenGate()
