"""Who is calling and what they may do: the `AuthContext` of a request and the policy checks on it.

Owns: the scopes, `AuthError`, `AuthContext` (and `NO_AUTH`, auth off) and the
checks resources make through `starcite.api.auth.access` (scope, session lock,
tenant fence, actor, creator). Pure: no tokens, keys or I/O (verifying a
token and building its context is `starcite.api.auth.tokens`). Must not:
read the request, the session store or the clock.

What each kind may do. Scopes, not the token kind, decide every endpoint
except `/v1/auth/issue` and `/api/v1/session-tokens`, which need a service
token. PATCH, archive and unarchive need `session:create` (`MANAGE_SCOPE`,
upstream's scope for them), the session lock and the tenant fence. Seed 000 calls session create/list "service-only"; here a principal
token may also create and list when the service that issued it granted
`session:create` / `session:read`, because the issuing service chose those
scopes (a service that wants create/list for itself alone simply does not
grant them), and a principal that can read every session of its tenant one
by one gains nothing it could not already see from a listing. The fences
stay the same for both kinds: listing shows only the token's tenant (and,
for a session-locked token, only its sessions); a session-locked token must
name one of its sessions when it creates one (a generated id would make a
session it cannot use); a principal (a token minted here, or an identity
provider's token whose `sub` is `user:<id>`/`agent:<id>`) cannot issue
tokens, and its appends are recorded with `actor` = `user:<id>`/`agent:<id>`
and any other requested actor is 403 `forbidden_actor`; a service token's
appends are recorded with the requested actor (services act for others) or,
without one, `service:<id>` (the id of a `service:<id>` sub, else the whole
sub), so every event under auth says who wrote it; `creator_principal`
records `{tenant_id, id, type}` with type `user`/`agent`/`service`.

Policy helpers take the `AuthContext` of the request. With auth disabled the
middleware passes `NO_AUTH`, which every helper allows; `None` (no context at
all) is refused with 401 so a wiring mistake fails closed.
"""

import dataclasses

from starcite.core.errors import StarciteError

SCOPES = frozenset({"session:create", "session:read", "session:append", "session:delete", "auth:issue"})
# PATCH, archive and unarchive change a session's record, not its events: they need the scope that
# creates records, as upstream Starcite's "manage" action does (so its tokens work unchanged here).
MANAGE_SCOPE = "session:create"
# A principal token can never hold auth:issue: only service tokens mint tokens.
PRINCIPAL_SCOPES = SCOPES - {"auth:issue"}
PRINCIPAL_TYPES = ("user", "agent")


class AuthError(StarciteError):
    """An auth failure the API turns into `{"error": code, "message": message}`.

    status: 401 (no/invalid/expired token), 403 (policy denial), 400 (bad
    `/v1/auth/issue` body), 503 (principal tokens not configured).
    """


@dataclasses.dataclass(frozen=True)
class AuthContext:
    """Who is calling. kind: "service", "principal", or "none" (auth off).

    subject: the service token's `sub`, or the principal's id.
    principal_type: None for service tokens, "user"/"agent" for principals.
    session_ids: None = any session of the tenant, else the only ones allowed.
    expires_at: the token's `exp` (epoch seconds; None with auth off). The
    token is accepted while now < `expires_at` + leeway.
    """

    kind: str
    tenant_id: str | None
    subject: str | None
    principal_type: str | None
    scopes: frozenset
    session_ids: frozenset | None
    expires_at: int | None

    @property
    def actor(self) -> str | None:
        """`user:<id>` / `agent:<id>` for principals, `service:<sub>` for
        service tokens, None with auth off: the actor an append defaults to."""
        if self.kind == "principal":
            return f"{self.principal_type}:{self.subject}"
        return f"service:{self.subject}" if self.kind == "service" else None


Principal = AuthContext
NO_AUTH = AuthContext("none", None, None, None, SCOPES, None, None)


def _restricted(ctx: AuthContext | None) -> bool:
    """True when `ctx` is a real token (checks apply), False for NO_AUTH."""
    if ctx is None:
        raise AuthError(401, "unauthorized", "missing bearer token")
    return ctx.kind != "none"


def require_service(ctx: AuthContext):
    """403 `forbidden` for principal tokens (service-only endpoints)."""
    if _restricted(ctx) and ctx.kind != "service":
        raise AuthError(403, "forbidden", "this endpoint needs a service token")


def require_scope(ctx: AuthContext, scope: str):
    if _restricted(ctx) and scope not in ctx.scopes:
        raise AuthError(403, "forbidden_scope", f"token lacks scope {scope}")


def require_session(ctx: AuthContext, session_id: str):
    if _restricted(ctx) and ctx.session_ids is not None and session_id not in ctx.session_ids:
        raise AuthError(403, "forbidden_session", "token is not valid for this session")


def require_create_session(ctx: AuthContext, session_id: str | None):
    """A session-locked token may only create one of its sessions, by id."""
    if _restricted(ctx) and ctx.session_ids is not None:
        if session_id is None:
            raise AuthError(403, "forbidden_session",
                            "a session-locked token must create its session by id (one of its sessions)")
        require_session(ctx, session_id)


def require_tenant(ctx: AuthContext, tenant_id: str | None):
    """403 unless `tenant_id` (e.g. a session's metadata.tenant_id) is the token's."""
    if _restricted(ctx) and tenant_id != ctx.tenant_id:
        raise AuthError(403, "forbidden_tenant", "tenant does not match the token's tenant")


def fence_create_metadata(ctx: AuthContext, metadata: dict | None) -> dict:
    """A copy of (already validated) create metadata with the token's tenant."""
    metadata = dict(metadata or {})
    if _restricted(ctx):
        require_tenant(ctx, metadata.setdefault("tenant_id", ctx.tenant_id))
    return metadata


def resolve_actor(ctx: AuthContext, requested: str | None) -> str | None:
    """The actor to record: the principal itself for principal tokens (a
    different requested actor is 403 `forbidden_actor`); for service tokens
    the requested value, else `service:<sub>`; with auth off the requested
    value (possibly None)."""
    if not _restricted(ctx):
        return requested
    if ctx.kind == "service":
        return requested or ctx.actor
    if requested and requested != ctx.actor:
        raise AuthError(403, "forbidden_actor", f"actor must be {ctx.actor} for this token")
    return ctx.actor


def creator_principal(ctx: AuthContext) -> dict | None:
    """`{tenant_id, id, type}` for a session's creator; type "service" for
    service tokens, None with auth off."""
    if not _restricted(ctx):
        return None
    return {"tenant_id": ctx.tenant_id, "id": ctx.subject, "type": ctx.principal_type or "service"}
