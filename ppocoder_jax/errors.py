"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (missing file, malformed data, invalid config...).

    The message must name the offending file/key and the problem in one line.
    """


EXIT_USAGE = 2
