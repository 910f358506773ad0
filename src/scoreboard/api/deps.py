"""Typed dependencies: the wired services and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from scoreboard.container import Services
from scoreboard.domain.errors import Forbidden, Unauthenticated
from scoreboard.service.identity import Principal


# The dependencies are `async def` although they do not wait: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop per request for a dictionary lookup.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("Missing Authorization: Bearer token.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'.")
    return token.strip()


async def get_principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    services: Services = request.app.state.services
    return await services.identity.authenticate(bearer_token(authorization))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """A user's token or an API key (`ApiKeys.caller`): routes that take both."""
    services: Services = request.app.state.services
    return await services.apikeys.caller(bearer_token(authorization))


CallerDep = Annotated[Principal, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> Principal:
    """An admin: a user holding the admin role (`service.roles`) or an admin API key. No or
    a bad token → 401 (from `get_caller`); anyone else → 403 `FORBIDDEN`."""
    if not caller.is_admin:
        raise Forbidden("This route is for admins.")
    return caller


AdminDep = Annotated[Principal, Depends(get_admin)]


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientDep = Annotated[str, Depends(client_address)]
