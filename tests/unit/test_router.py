"""The route table and the router over it: path parameters, 404 for an unknown path, 405 naming
the methods a known path takes, and a group for every route."""

from __future__ import annotations

import pytest

from offgrid.server.app import ROUTES, Route, Router
from offgrid.server.errors import MethodNotAllowed, NotFound
from offgrid.server.policy import Group

ROUTER = Router(ROUTES)


def matched(method: str, path: str) -> tuple[str, dict[str, str]]:
    route, params = ROUTER.match(method, path)
    return route.path, params


def test_path_parameters_are_what_stands_in_their_place():
    assert matched("GET", "/v1/users/7") == ("/v1/users/{user_id}", {"user_id": "7"})
    assert matched("DELETE", "/v1/users/7/api-keys/12") == (
        "/v1/users/{user_id}/api-keys/{key_id}", {"user_id": "7", "key_id": "12"})
    assert matched("GET", "/v1/models/SmolLM2-135M-Instruct.Q4_1") == (
        "/v1/models/{model_id}", {"model_id": "SmolLM2-135M-Instruct.Q4_1"})
    assert matched("GET", "/v1/users") == ("/v1/users", {})


def test_a_fixed_path_is_not_taken_for_a_parameter():
    assert matched("POST", "/v1/models/download") == ("/v1/models/download", {})
    assert matched("GET", "/v1/models/download/progress") == ("/v1/models/download/progress", {})
    # ...but where only the parameter's route takes the method, the fixed word is a model id
    assert matched("GET", "/v1/models/download") == ("/v1/models/{model_id}",
                                                     {"model_id": "download"})


@pytest.mark.parametrize("path", [
    "/v1/nowhere", "/v1/users/", "/v1/users/7/", "/health/", "/v1/models/a/b", "", "/V1/models",
    "/v1/users/7/api-keys/12/extra", "/v1//users",
])
def test_an_unknown_path_is_404_whatever_the_method(path):
    for method in ("GET", "POST", "BREW"):
        with pytest.raises(NotFound) as missing:
            ROUTER.match(method, path)
        assert (missing.value.status, missing.value.code) == (404, "unknown_url")
    with pytest.raises(NotFound):
        ROUTER.methods(path)


@pytest.mark.parametrize("method, path, allowed", [
    ("DELETE", "/v1/chat/completions", "POST"),
    ("POST", "/v1/models", "GET"),
    ("PUT", "/v1/users", "GET, POST"),
    ("PATCH", "/v1/users/7", "GET, DELETE"),
    ("BREW", "/v1/models/download", "GET, DELETE, POST"),
    ("GET", "/v1/users/7/role", "PUT"),
])
def test_a_known_path_and_another_method_is_405_naming_the_methods(method, path, allowed):
    with pytest.raises(MethodNotAllowed) as refused:
        ROUTER.match(method, path)
    assert (refused.value.status, refused.value.code) == (405, "method_not_allowed")
    assert refused.value.headers == {"Allow": allowed}
    assert ROUTER.methods(path) == allowed.split(", ")


def test_every_route_names_its_group_and_appears_once():
    routes = [Route(*entry) for entry in ROUTES]
    undeclared = [entry[:2] for entry in ROUTES if len(entry) < 4]
    assert not undeclared, "a route without a group is for admins only: say so"
    assert all(isinstance(route.group, Group) and callable(route.handler) for route in routes)
    pairs = [(route.method, route.path) for route in routes]
    assert len(pairs) == len(set(pairs))


def test_no_route_is_hidden_behind_an_earlier_one():
    for route in (Route(*entry) for entry in ROUTES):
        concrete = route.path.replace("{user_id}", "3").replace("{key_id}", "4").replace(
            "{model_id}", "some-model")
        assert ROUTER.match(route.method, concrete)[0] == route
