"""Errors that mean "the user asked for something that cannot work".

The CLI prints them as one line and exits 2; the library raises them so that
notebooks get a clear message too.
"""


class UserError(ValueError):
    """Bad input: a missing path, a mismatched class count, conflicting options."""
