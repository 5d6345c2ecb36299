"""docs/multi-user.md's table of who gets what is the policy: every cell against policy.decide,
and its list of groups against the route table. tests/test_access_table.py checks the same
table against running servers."""

from offgrid.server import policy
from offgrid.server.app import ROUTES, Route
from offgrid.server.policy import Group, Mode
from support.policy_table import documented_groups, documented_outcomes


def test_the_table_covers_every_mode_and_group_and_agrees_with_the_policy():
    table = documented_outcomes()
    modes = {Mode(m, a, g) for m in (False, True) for a in (False, True) for g in (False, True)}
    assert set(table) == {(mode, group) for mode in modes for group in Group}
    for (mode, group), outcomes in table.items():
        for role, outcome in outcomes.items():
            assert policy.decide(mode, group, role) == outcome, (mode, group, role)


def test_the_group_list_is_the_route_table():
    routes = [Route(*route) for route in ROUTES]
    assert documented_groups() == {
        group: {(r.method, r.path) for r in routes if r.group == group} for group in Group}


def test_a_route_that_names_no_group_is_for_admins_only():
    route = Route("DELETE", "/v1/models/{model_id}", print)
    assert route.group == Group.ADMIN
    assert policy.decide(Mode(True, False, True), route.group, "user") == policy.FORBIDDEN
