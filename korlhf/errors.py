"""The one exception type users see: a message, no traceback."""


class KorlhfError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``error: <message>`` and exits with status 2; nothing else is shown.
    The message should say where (file, line or record), what is wrong and how to fix it.
    """
