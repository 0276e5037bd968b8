"""JWT authentication and authorization policy for `STARCITE_AUTH_MODE=jwt`.

Owns: reading a bearer token from a request, verifying service JWTs against
the keys of a `starcite.api.auth.jwks.JwksCache` (asymmetric algorithms only;
a missing key is a 401 decided here), minting and verifying Starcite's
own principal tokens (`POST /v1/auth/issue`, its body shape), turning a
token into the `policy.AuthContext` every resource receives. (Redaction of
`access_token` in logged URLs is `starcite.telemetry.redact`.)

Must not: import the web framework, touch sessions or storage, read the
environment (everything comes from `Config`), or fetch the JWKS on the
request path except through the cache's rate-limited refetch on an unknown
`kid`. It must not depend on gevent.

Token kinds. A *service* token is issued by the customer's identity provider
and verified with a JWKS key chosen by `kid`. Its `sub` says who it is, as
upstream reads it (`subject_principal`): `user:<id>` / `agent:<id>` make it
that principal (context kind "principal": it appends as itself and cannot
issue), `service:<id>` or a bare `sub` a service. A *principal* token is minted by
`Authenticator.issue_principal_token`: HS256 under a key derived from
`secret_key_base` and `principal_token_salt`, header `typ` =
`PRINCIPAL_TYP`, fixed `iss`/`aud` of our own. The `typ` header only picks
the verification path: a principal-path token must carry our HMAC signature
and issuer/audience, a service-path token must carry an RSA/EC signature from
the JWKS, so neither kind can pass as the other. A token is locked to
sessions by `session_id` (one) and/or `session_ids` (a list); principal
tokens locked to one session carry both.

What each kind may do, and the `AuthContext` every check takes, is
`starcite.api.auth.policy`.
"""


import datetime
import hashlib
import hmac
import logging
import time

from jose import jwk, jws, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

from starcite.api.auth.jwks import JwksCache
from starcite.api.auth.policy import (PRINCIPAL_SCOPES, PRINCIPAL_TYPES, AuthContext, AuthError, require_scope,
                                 require_service, require_tenant)
from starcite.core.shapes import Array, Field, Integer, Obj, Text, check_object

log = logging.getLogger("starcite.auth")

PRINCIPAL_TYP = "starcite-principal+jwt"
PRINCIPAL_ISSUER = "starcite"
PRINCIPAL_AUDIENCE = "starcite-principal"
_PRINCIPAL_ALG = "HS256"
SUBJECT_PREFIXES = (*PRINCIPAL_TYPES, "service")

# Accepted service-token algorithms -> (JWK kty, EC curve). python-jose has no
# PS256/EdDSA, so those are refused like every symmetric algorithm and "none".
_SERVICE_ALGS = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
}


def _invalid(message: str) -> AuthError:
    return AuthError(401, "invalid_token", message)


def _expired() -> AuthError:
    return AuthError(401, "token_expired", "token has expired")


# ---------------------------------------------------------------- requests

def extract_token(headers_get, query_params) -> str | None:
    """The bearer token of a request, or None.

    headers_get: callable name -> value or None (e.g. falcon `req.get_header`).
    query_params: mapping (e.g. `req.params`); a repeated param's first value
    is used. `Authorization: Bearer <t>` (any case) wins over `access_token`.
    """
    parts = (headers_get("Authorization") or "").split(None, 1)
    if len(parts) == 2 and parts[0].lower() == "bearer" and parts[1].strip():
        return parts[1].strip()
    value = query_params.get("access_token")
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return value or None


# ---------------------------------------------------------------- claims

def _string(value, what: str, error) -> str:
    if not isinstance(value, str) or not value:
        raise error(f"{what} must be a non-empty string")
    return value


def _strings(value, what: str, error) -> frozenset:
    if not isinstance(value, list) or not value:
        raise error(f"{what} must be a non-empty list of strings")
    return frozenset(_string(item, f"each of {what}", error) for item in value)


def _service_scopes(claims) -> frozenset:
    scope, scopes = claims.get("scope"), claims.get("scopes")
    if scope is not None and not isinstance(scope, str):
        raise _invalid("claim 'scope' must be a space-delimited string")
    if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise _invalid("claim 'scopes' must be a list of strings")
    return frozenset((scope or "").split()) | frozenset(scopes or ())


def _session_lock(claims) -> frozenset | None:
    """The sessions a token is locked to, None for none: `session_id` (one id, the claim upstream
    and the newest TypeScript SDK read) and/or `session_ids` (a list, what principal tokens minted
    before `session_id` carry). Both present must name the same one session."""
    session_id, session_ids = claims.get("session_id"), claims.get("session_ids")
    listed = None if session_ids is None else _strings(session_ids, "claim 'session_ids'", _invalid)
    if session_id is None:
        return listed
    one = frozenset({_string(session_id, "claim 'session_id'", _invalid)})
    if listed is not None and listed != one:
        raise _invalid("claims 'session_id' and 'session_ids' name different sessions")
    return one


def subject_principal(sub: str) -> tuple:
    """(id, principal type) named by an identity provider's `sub`, as upstream reads it:
    `user:<id>` and `agent:<id>` are that principal (type "user"/"agent"); `service:<id>` and a
    `sub` without one of these prefixes are a service (type None; its actor is `service:<id>`)."""
    prefix, colon, rest = sub.partition(":")
    if not colon or prefix not in SUBJECT_PREFIXES:
        return sub, None
    if not rest:
        raise _invalid(f"claim 'sub' names no id after {prefix + colon!r}")
    return rest, None if prefix == "service" else prefix


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def derive_principal_key(secret_key_base: str, salt: str) -> bytes:
    """HMAC-SHA256(secret_key_base, salt): the principal-token signing key."""
    return hmac.new(secret_key_base.encode(), salt.encode(), hashlib.sha256).digest()


# ---------------------------------------------------------------- authenticator

class Authenticator:
    """Verifies bearer tokens and mints principal tokens for one node.

    Without `secret_key_base` principal tokens are disabled (issue -> 503,
    principal tokens -> 401) and a warning is logged.
    """

    def __init__(self, config, jwks_cache: JwksCache | None = None):
        self.issuer = config.auth_issuer
        self.audience = config.auth_audience
        self.leeway = config.auth_leeway_seconds
        self.max_ttl = config.principal_token_max_ttl
        self.default_ttl = min(config.principal_token_default_ttl, self.max_ttl)
        self.issue_body = issue_body_shape(self.max_ttl)
        self.jwks = jwks_cache or JwksCache(config.auth_jwks_url, config.auth_jwks_refresh_ms,
                                            refetch_ms=config.auth_jwks_refetch_ms)
        self._principal_key = None
        if config.secret_key_base:
            secret = derive_principal_key(config.secret_key_base, config.principal_token_salt)
            self._principal_key = jwk.construct(secret, _PRINCIPAL_ALG)
        else:
            log.warning("SECRET_KEY_BASE is not set: principal tokens (/v1/auth/issue) are disabled")

    def start(self):
        self.jwks.start()

    def stop(self):
        self.jwks.stop()

    def authenticate(self, token: str | None) -> AuthContext:
        """Verify a bearer token; AuthError 401 unless it is valid."""
        if not token:
            raise AuthError(401, "unauthorized", "missing bearer token")
        try:
            header = jws.get_unverified_header(token)
        except (JOSEError, TypeError, ValueError):
            raise _invalid("malformed token") from None
        if header.get("typ") == PRINCIPAL_TYP:
            return self._principal_context(token)
        return self._service_context(token, header)

    def _decode(self, token, key, alg, issuer, audience) -> dict:
        options = {"leeway": self.leeway, "require_exp": True, "require_iss": True,
                   "require_aud": True, "require_sub": True}
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer, options=options)
        except ExpiredSignatureError:
            raise _expired() from None
        except JWTClaimsError as exc:
            raise _invalid(f"invalid claims: {exc}") from None
        except (JOSEError, TypeError, ValueError):
            raise _invalid("invalid token signature or encoding") from None
        # python-jose compares `exp` with whole seconds, so it accepts a token
        # for up to a second past exp + leeway. Refuse it from exactly
        # exp + leeway: the instant an open tail closes with 4001 (see
        # `JwtGate.expires_at`), so a reconnect with the same token is 401.
        if time.time() >= int(claims["exp"]) + self.leeway:
            raise _expired()
        return claims

    def _service_context(self, token, header) -> AuthContext:
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in _SERVICE_ALGS:
            raise _invalid(f"algorithm {alg!r} is not accepted (use RS256/384/512 or ES256/384/512)")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("header 'kid' must be a string")
        key = self._signing_key(kid)
        kty, crv = _SERVICE_ALGS[alg]
        if key.get("kty") != kty or key.get("crv") != crv or key.get("alg", alg) != alg:
            raise _invalid(f"algorithm {alg} does not match the signing key")
        try:
            key_object = jwk.construct(key, alg)
        except (JOSEError, TypeError, ValueError):
            raise _invalid("signing key in the JWKS is unusable") from None
        claims = self._decode(token, key_object, alg, self.issuer, self.audience)
        subject, principal_type = subject_principal(_string(claims.get("sub"), "claim 'sub'", _invalid))
        return AuthContext(
            kind="service" if principal_type is None else "principal",
            tenant_id=_string(claims.get("tenant_id"), "claim 'tenant_id'", _invalid),
            subject=subject,
            principal_type=principal_type,
            scopes=_service_scopes(claims),
            session_ids=_session_lock(claims),
            expires_at=int(claims["exp"]),
        )

    def _signing_key(self, kid: str | None) -> dict:
        """The JWKS key for `kid` (None: the only key of the set), or AuthError 401."""
        if kid is None and self.jwks.key_count > 1:
            raise _invalid("token has no 'kid' header and the JWKS holds several keys")
        key = self.jwks.get_key(kid)
        if key is not None:
            return key
        if not self.jwks.key_count:
            why = " (JWKS endpoint unavailable)" if self.jwks.last_error else ""
            raise AuthError(401, "unauthorized", f"cannot verify token: no signing keys available{why}")
        raise _invalid("token has no 'kid' header" if kid is None else f"unknown signing key id {kid!r}")

    def _principal_context(self, token) -> AuthContext:
        if self._principal_key is None:
            raise _invalid("principal tokens are not enabled on this node")
        claims = self._decode(token, self._principal_key, _PRINCIPAL_ALG, PRINCIPAL_ISSUER, PRINCIPAL_AUDIENCE)
        principal_type = claims.get("principal_type")
        scopes = _strings(claims.get("scopes"), "claim 'scopes'", _invalid)
        if principal_type not in PRINCIPAL_TYPES or not scopes <= PRINCIPAL_SCOPES:
            raise _invalid("invalid principal token claims")
        return AuthContext(
            kind="principal",
            tenant_id=_string(claims.get("tenant_id"), "claim 'tenant_id'", _invalid),
            subject=_string(claims.get("sub"), "claim 'sub'", _invalid),
            principal_type=principal_type,
            scopes=scopes,
            session_ids=_session_lock(claims),
            expires_at=int(claims["exp"]),
        )

    def issue_principal_token(self, ctx: AuthContext, body, now: float | None = None) -> dict:
        """`POST /v1/auth/issue`: `{"token": ..., "expires_at": "<ISO-8601 UTC>"}`.

        Body: `{principal: {tenant_id, id, type: user|agent}, scopes: [...],
        session_ids?: [...], ttl_seconds?: 1..max}`. Unknown fields and a TTL
        above the maximum are 400 (not clamped: a client asking for more than
        it gets should learn so). What may be granted is `mint_principal_token`'s.
        """
        self.check_issuer(ctx)
        principal, scopes, session_ids, ttl = self._parse_issue(body)
        claims, token = self.mint_principal_token(ctx, principal, scopes, session_ids, ttl, now)
        return {"token": token, "expires_at": _iso(claims["exp"])}

    def check_issuer(self, ctx: AuthContext):
        """Who may mint (before any body is read): a service token holding `auth:issue`, on a node
        with `SECRET_KEY_BASE` (else 503)."""
        require_service(ctx)
        require_scope(ctx, "auth:issue")
        if self._principal_key is None:
            raise AuthError(503, "auth_unavailable", "principal tokens are disabled: SECRET_KEY_BASE is not set")

    def mint_principal_token(self, ctx: AuthContext, principal: dict, scopes: frozenset,
                             session_ids: frozenset | None, ttl: int, now: float | None = None) -> tuple:
        """(claims, token) of a principal token for `principal` `{tenant_id, id, type}`, after the
        checks every way of issuing shares: the tenant is the service token's, the granted scopes
        are held by the service token and its session lock covers `session_ids`. A token locked to
        one session also carries it as `session_id` (the claim the newest TypeScript SDK reads),
        next to `session_ids` (what nodes before it read: they must still see the lock)."""
        self.check_issuer(ctx)
        require_tenant(ctx, principal["tenant_id"])
        if not scopes <= ctx.scopes:
            raise AuthError(403, "forbidden_scope",
                            f"cannot grant scopes the service token lacks: {', '.join(sorted(scopes - ctx.scopes))}")
        if ctx.session_ids is not None and not (session_ids and session_ids <= ctx.session_ids):
            raise AuthError(403, "forbidden_session", "session_ids must lie within the service token's session")
        issued_at = int(time.time() if now is None else now)
        claims = {"iss": PRINCIPAL_ISSUER, "aud": PRINCIPAL_AUDIENCE, "sub": principal["id"],
                  "tenant_id": principal["tenant_id"], "principal_type": principal["type"],
                  "scopes": sorted(scopes), "iat": issued_at, "exp": issued_at + ttl}
        if session_ids is not None:
            claims["session_ids"] = sorted(session_ids)
            if len(session_ids) == 1:
                claims["session_id"] = claims["session_ids"][0]
        token = jwt.encode(claims, self._principal_key, algorithm=_PRINCIPAL_ALG, headers={"typ": PRINCIPAL_TYP})
        return claims, token

    def _parse_issue(self, body):
        check_object(body, self.issue_body, "body must be a JSON object", AuthError)
        session_ids = body.get("session_ids")
        return (body["principal"], frozenset(body["scopes"]),
                None if session_ids is None else frozenset(session_ids),
                self.default_ttl if body.get("ttl_seconds") is None else body["ttl_seconds"])


def issue_body_shape(max_ttl: int) -> Obj:
    """The body of `POST /v1/auth/issue`: its validator and its OpenAPI schema (see `starcite.core.shapes`)."""
    return Obj(closed=True, fields=(
        Field("principal", principal_shape(tenant_required=True),
              "principal must be an object {tenant_id, id, type}", required=True),
        SCOPES_FIELD,
        Field("session_ids", Array(Text(min_length=1), min_items=1),
              "session_ids must be a non-empty list of non-empty strings"),
        ttl_field(max_ttl),
    ))


def principal_shape(tenant_required: bool) -> Obj:
    """`{tenant_id, id, type: user|agent}`, the principal a token is issued to."""
    return Obj(closed=True, fields=(
        Field("tenant_id", Text(min_length=1), "principal.tenant_id must be a non-empty string",
              required=tenant_required),
        Field("id", Text(min_length=1), "principal.id must be a non-empty string", required=True),
        Field("type", Text(choices=PRINCIPAL_TYPES), "principal.type must be 'user' or 'agent'", required=True),
    ))


SCOPES_FIELD = Field("scopes", Array(Text(choices=tuple(sorted(PRINCIPAL_SCOPES))), min_items=1),
                     "scopes must be a non-empty list of scopes grantable to a principal "
                     f"({', '.join(sorted(PRINCIPAL_SCOPES))})", required=True)


def ttl_field(max_ttl: int) -> Field:
    return Field("ttl_seconds", Integer(1, max_ttl), f"ttl_seconds must be an integer from 1 to {max_ttl}")


def issue_principal_token(ctx: AuthContext, body, authenticator: Authenticator, now: float | None = None) -> dict:
    """Module-level form of `Authenticator.issue_principal_token`."""
    return authenticator.issue_principal_token(ctx, body, now)
