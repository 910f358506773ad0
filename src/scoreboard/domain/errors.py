"""Domain errors. The core raises these; `api/errors.py` alone maps them to HTTP."""

from __future__ import annotations

from typing import Any

Problem = dict[str, Any]


def problems(message: str, details: Problem | list[Problem] | None) -> list[Problem] | None:
    """`details` in its one shape: a list of `{"field", "problem", ...}`.

    A raiser may pass one problem as a dict (`{"field": "limit"}`); its `problem` defaults to
    the error's message. Every error body and WebSocket error frame carries this list, so a
    client reads one shape whatever the route or the kind of error."""
    if details is None:
        return None
    listed = [details] if isinstance(details, dict) else details
    return [{"field": "body", "problem": message, **problem} for problem in listed]


class DomainError(Exception):
    """Base class: a stable machine-readable `code`, a human `message` and optional
    `details` (a list of `{"field", "problem"}`, see `problems`)."""

    code = "INTERNAL_ERROR"
    default_message = "Internal error."

    def __init__(
        self, message: str | None = None, *, details: Problem | list[Problem] | None = None
    ):
        self.message = message or self.default_message
        self.details = problems(self.message, details)
        super().__init__(self.message)


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"
    default_message = "The request is not valid."


class InvalidActionType(DomainError):
    code = "INVALID_ACTION_TYPE"
    default_message = "Unknown action type."


class InvalidScope(DomainError):
    code = "INVALID_SCOPE"
    default_message = "Unknown leaderboard scope."


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    default_message = "Invalid or missing authentication token."


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"
    default_message = "Invalid username or password."


class Forbidden(DomainError):
    code = "FORBIDDEN"
    default_message = "You may not act on another user's resources."


class NotFound(DomainError):
    code = "NOT_FOUND"
    default_message = "Not found."


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"
    default_message = "Idempotency key already used for a different request."


class ActionNotOpen(DomainError):
    code = "ACTION_NOT_OPEN"
    default_message = "The action is already completed or cancelled."


class AlreadyVoided(DomainError):
    code = "ALREADY_VOIDED"
    default_message = "This event was voided already."


class ModerationConflict(DomainError):
    """A moderation action that does not apply to the user's status (unban a user who is
    not banned, release one who is not quarantined)."""

    code = "CONFLICT"
    default_message = "The user is not in the state this action undoes."


class FlagResolved(DomainError):
    """Resolving a flag that is resolved already."""

    code = "ALREADY_RESOLVED"
    default_message = "This flag was resolved already."


class UsernameTaken(DomainError):
    code = "USERNAME_TAKEN"
    default_message = "That username is taken."


class NameTaken(DomainError):
    code = "NAME_TAKEN"
    default_message = "That name is taken."


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    default_message = "Too many requests."

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"
    default_message = "The service is temporarily unavailable; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
