"""Logging in and out, and who the caller is."""

from __future__ import annotations

from ...store import credentials, users
from ..errors import BadRequest, Unauthorized
from ..http import Request, Response
from .users import user_json


def login(app, request: Request) -> Response:
    body = request.json()
    username, password = body.get("username"), body.get("password")
    for name, value in (("username", username), ("password", password)):
        if not isinstance(value, str) or not value:
            raise BadRequest(f"Missing required parameter: '{name}'",
                             code="missing_required_parameter", param=name)
    # Counted as failed before the slow password check, so that parallel guesses count too.
    app.gate.logins.reserve(username, request.address)
    user = users.authenticate(app.db, username, password)
    if user is None:
        app.gate.logins.failed(username, request.address)
        raise Unauthorized("Wrong username or password", code="invalid_credentials")
    app.gate.logins.succeeded(username, request.address)
    token, expires_at = credentials.create_token(app.db, user.id, app.settings.token_lifetime)
    return Response({"access_token": token, "token_type": "bearer",
                     "expires_in": app.settings.token_lifetime, "expires_at": int(expires_at),
                     "user": user_json(app, user)})


def logout(app, request: Request) -> Response:
    token_id = request.caller.identity.token_id
    if token_id is None:
        raise BadRequest("Logging out ends a login token's session, and this request used an "
                         "API key; revoke keys with DELETE /v1/users/{id}/api-keys/{key_id}",
                         code="not_a_login_token")
    credentials.revoke_token(app.db, token_id)
    return Response({"logged_out": True})


def me(app, request: Request) -> Response:
    return Response(user_json(app, request.caller.user))
