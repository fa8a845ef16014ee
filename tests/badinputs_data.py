"""Bad-input cases: data. See badinput.py for the fields."""

from badinput import case  # noqa: F401

CASES = []
