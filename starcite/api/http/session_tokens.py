"""The resource of `POST /api/v1/session-tokens` (the newest TypeScript SDK's token endpoint).

Owns: reading the bounded JSON body, refusing a caller that may not mint
before the body is read, and rendering `{token, expires_in}` (201, never
cached). Must not: decide who may mint or what a token holds
(`starcite.api.auth.session_tokens` and `starcite.api.auth.tokens` do).
"""

import falcon

from starcite.api.auth.tokens import extract_token
from starcite.api.http.resources import read_json, send_json


class SessionTokensResource:
    def __init__(self, session_tokens, max_body):
        self.session_tokens, self.max_body = session_tokens, max_body

    def on_post(self, req, resp):
        access = req.context.access
        self.session_tokens.check_issuer(access.ctx)  # 403/503 before the body is even read
        body, _ = read_json(req, self.max_body)
        api_key = None if access.enabled else extract_token(req.get_header, req.params)
        resp.set_header("Cache-Control", "no-store")
        send_json(resp, falcon.HTTP_201, self.session_tokens.issue(access.ctx, body, api_key))
