"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (missing file, malformed data, invalid config...).

    The message must name the offending file/key and the problem in one line.
    """


EXIT_USAGE = 2


class Preempted(Exception):
    """The job stopped early on request (SIGTERM) after saving what a re-run resumes from.

    The CLI prints the message and exits 0: the scheduler asked for the stop.
    """
