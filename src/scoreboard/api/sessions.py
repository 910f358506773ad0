"""Sessions, `/api/v1/auth/refresh` and `/api/v1/auth/logout` (API.md section 6, "Sessions").
Neither takes an access token: the refresh token is the credential (`service/sessions.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from scoreboard.api.deps import ClientDep, ServicesDep
from scoreboard.api.schemas import RefreshIn, TokenOut, errors
from scoreboard.api.text import CheckedRoute
from scoreboard.service.sessions import Session

router = APIRouter(prefix="/api/v1", route_class=CheckedRoute)


@router.post(
    "/auth/refresh", response_model=TokenOut, tags=["identity"], responses=errors(401, 429, 503)
)
async def refresh(body: RefreshIn, services: ServicesDep, client: ClientDep) -> TokenOut:
    """Exchange a refresh token (once) for a new access token and the next refresh token;
    presenting a used one ends its whole session."""
    return token_out(await services.sessions.refresh(body.refresh_token, client=client))


@router.post("/auth/logout", status_code=204, tags=["identity"], responses=errors(429, 503))
async def logout(body: RefreshIn, services: ServicesDep, client: ClientDep) -> Response:
    """End the session of a refresh token (every token of its login); 204 whatever it was."""
    await services.sessions.logout(body.refresh_token, client=client)
    return Response(status_code=204)


def token_out(session: Session) -> TokenOut:
    """The body of a login or a refresh."""
    return TokenOut(
        access_token=session.access_token,
        expires_in=session.expires_in,
        refresh_token=session.refresh_token,
    )
