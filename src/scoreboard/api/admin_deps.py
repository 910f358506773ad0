"""A placeholder admin guard for `/api/v1/admin/*` routes (API.md section 6, "Admins"), until
the admin role lands: no token → 401, a principal without the `admin` role → 403. Principals
have no roles yet, so today every token is refused with 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from scoreboard.api.deps import get_principal
from scoreboard.domain.errors import Forbidden
from scoreboard.service.identity import Principal


async def require_admin(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    principal = await get_principal(request, authorization)
    if "admin" not in getattr(principal, "roles", ()):
        raise Forbidden("This route is for admins.")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
