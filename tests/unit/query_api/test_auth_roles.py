"""Roles from token claims and the role check: pure logic of query_api._auth."""

from __future__ import annotations

from typing import Any

import pytest

from catalog import Role
from query_api._auth import DEFAULT_ROLE_CLAIM, Principal, _role_from_claims, require_role
from stockdata.errors import PermissionDeniedError


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({DEFAULT_ROLE_CLAIM: "admin"}, Role.ADMIN),
        ({DEFAULT_ROLE_CLAIM: "Analyst", "permissions": ["stockdata:admin"]}, Role.ANALYST),
        ({"permissions": ["stockdata:reader", "stockdata:analyst"]}, Role.ANALYST),
        ({"scope": "openid profile stockdata:admin"}, Role.ADMIN),
        ({"scope": "openid stockdata:superuser"}, Role.READER),
        ({"permissions": "stockdata:admin"}, Role.READER),
        ({}, Role.READER),
    ],
)
def test_role_from_claims(claims: dict[str, Any], role: Role) -> None:
    assert _role_from_claims(claims, DEFAULT_ROLE_CLAIM) is role


def test_an_unknown_role_claim_is_forbidden() -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        _role_from_claims({DEFAULT_ROLE_CLAIM: "root"}, DEFAULT_ROLE_CLAIM)
    assert str(caught.value) == "the token's role 'root' is unknown"


@pytest.mark.parametrize(
    ("have", "need", "allowed"),
    [
        (Role.READER, Role.READER, True),
        (Role.READER, Role.ANALYST, False),
        (Role.ANALYST, Role.ANALYST, True),
        (Role.ADMIN, Role.ANALYST, True),
        (Role.ANALYST, Role.ADMIN, False),
    ],
)
def test_require_role_follows_rank(have: Role, need: Role, allowed: bool) -> None:
    principal = Principal("someone", have)
    if allowed:
        require_role(principal, need)
    else:
        with pytest.raises(PermissionDeniedError) as caught:
            require_role(principal, need)
        assert caught.value.http_status == 403
