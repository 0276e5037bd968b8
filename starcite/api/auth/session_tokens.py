"""`POST /api/v1/session-tokens`: the session token the newest TypeScript SDK asks for, mapped onto our issuing.

Owns: `SessionTokens`: the request body
(`{session_id, principal: {type, id}, scopes, ttl_seconds?}`, its validator and
OpenAPI schema in `body`) and the answer `{token, expires_in}`. With
``auth_mode = jwt`` the caller's bearer token is the SDK's "API key": a service
token holding `auth:issue` (the same right `POST /v1/auth/issue` needs), whose
tenant the principal gets; the token is one of our principal tokens
(`tokens.Authenticator.mint_principal_token`), locked to the one session and
carrying it as `session_id`. With ``auth_mode = none`` the node checks no token
at all, so the answer is an *unsecured* JWT (RFC 7519 §6, `alg: none`) with the
same claims, for the SDK to read its session and identity from; a jwt-mode node
refuses it like any unsigned token. Must not: import the web framework, decide
who may mint (`tokens` and `policy` do), or verify anything with auth off.
"""

import base64
import json
import time

from jose import jwt
from jose.exceptions import JOSEError

from starcite.api.auth.policy import AuthContext, AuthError
from starcite.api.auth.tokens import SCOPES_FIELD, principal_shape, ttl_field
from starcite.core.rules import SESSION_ID
from starcite.core.shapes import Field, Obj, check_object

# The tenant of a token minted with auth off when the API key names none: upstream's tenant with auth off.
AUTH_OFF_TENANT = "service"


def session_token_body_shape(max_ttl: int) -> Obj:
    """The body of `POST /api/v1/session-tokens` (see `starcite.core.shapes`). `principal.tenant_id`
    may be left out (the SDK does): it is the API key's tenant, and must be when given."""
    return Obj(closed=True, fields=(
        Field("session_id", SESSION_ID, "session_id must be a valid session id", required=True),
        Field("principal", principal_shape(tenant_required=False),
              "principal must be an object {type: user|agent, id}", required=True),
        SCOPES_FIELD,
        ttl_field(max_ttl),
    ))


class SessionTokens:
    """Mints session tokens for one node: through `authenticator` (jwt mode) or unsecured (auth off)."""

    def __init__(self, config, authenticator=None):
        self.authenticator = authenticator
        self.max_ttl = config.principal_token_max_ttl
        self.default_ttl = min(config.principal_token_default_ttl, self.max_ttl)
        self.body = session_token_body_shape(self.max_ttl)

    def check_issuer(self, ctx: AuthContext):
        """403/503 before the body is read (jwt mode); nothing with auth off."""
        if self.authenticator is not None:
            self.authenticator.check_issuer(ctx)

    def issue(self, ctx: AuthContext, body, api_key: str | None, now: float | None = None) -> dict:
        """`{"token": ..., "expires_in": <seconds>}` for a checked body. `api_key`: the request's
        bearer token, read (unverified) only with auth off, for the tenant it names."""
        check_object(body, self.body, "body must be a JSON object", AuthError)
        requested = body["principal"]
        tenant = ctx.tenant_id if self.authenticator is not None else _claimed_tenant(api_key)
        principal = {"tenant_id": requested.get("tenant_id", tenant), "id": requested["id"],
                     "type": requested["type"]}
        scopes, sessions = frozenset(body["scopes"]), frozenset({body["session_id"]})
        ttl = self.default_ttl if body.get("ttl_seconds") is None else body["ttl_seconds"]
        if self.authenticator is not None:
            claims, token = self.authenticator.mint_principal_token(ctx, principal, scopes, sessions, ttl, now)
        else:
            claims, token = _unsecured_token(principal, scopes, body["session_id"], ttl, now)
        return {"token": token, "expires_in": claims["exp"] - claims["iat"]}


def _claimed_tenant(api_key: str | None) -> str:
    """Auth off: the `tenant_id` an API key JWT claims (not verified: nothing is), else `AUTH_OFF_TENANT`."""
    try:
        claims = jwt.get_unverified_claims(api_key) if api_key else {}
    except (JOSEError, TypeError, ValueError):
        claims = {}
    tenant = claims.get("tenant_id") if isinstance(claims, dict) else None
    return tenant if isinstance(tenant, str) and tenant else AUTH_OFF_TENANT


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _unsecured_token(principal: dict, scopes: frozenset, session_id: str, ttl: int, now: float | None) -> tuple:
    issued_at = int(time.time() if now is None else now)
    claims = {"sub": principal["id"], "tenant_id": principal["tenant_id"], "principal_type": principal["type"],
              "scopes": sorted(scopes), "session_id": session_id, "session_ids": [session_id],
              "iat": issued_at, "exp": issued_at + ttl}
    return claims, f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
