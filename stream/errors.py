"""Errors a user can act on: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input or setup: the message says what is wrong, where, and what to do."""

    exit_code = 2


class BrokerUnreachable(UserError):
    """The message bus cannot be reached after the documented retries."""

    exit_code = 3
