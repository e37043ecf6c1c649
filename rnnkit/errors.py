"""The one exception type for a user's mistake: the CLI prints its message and exits with status 2."""


class UserError(ValueError):
    """Bad input from the user (file, option, shape). The message says what is wrong and how to fix it."""
