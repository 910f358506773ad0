"""The admin page at `/admin` (docs/OPERATIONS.md, "The admin page"): static HTML whose ES
modules and styles are under `/static` (no build step, nothing from elsewhere). It carries no
data and needs no token; everything it shows comes from the admin routes, which do.

Served with a strict Content-Security-Policy: scripts, styles and calls to this origin only,
no inline script or style, no framing (the ban buttons cannot be clickjacked), no referrer."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install(app: FastAPI, web_dir: Path) -> None:
    @app.get("/admin", include_in_schema=False)
    async def admin_page() -> FileResponse:
        return FileResponse(web_dir / "admin.html", headers=HEADERS)
