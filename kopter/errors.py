"""Errors an operator can act on. The CLI prints them as one line; workers log them."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError


class KopterError(Exception):
    """Something an operator can fix: the message says what and how."""


class ConfigError(KopterError):
    """A KOPTER_* setting is missing or malformed."""


class NotFound(KopterError):
    """A tenant, account or other item that does not exist (for this tenant)."""


class Refused(KopterError):
    """Input that kopter will not accept: malformed, or in conflict with what is stored."""


class NotBootstrapped(KopterError):
    """A queue or table is missing: `kopter bootstrap` creates them."""


def aws_error(error: ClientError | BotoCoreError) -> str:
    """An AWS call's failure as one line: its code and message, as AWS answered."""
    if isinstance(error, ClientError):
        return f"{error.response['Error'].get('Code')}: {error.response['Error'].get('Message')}"
    return str(error)
