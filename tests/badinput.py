"""The shared shape of a bad-input case, for `tests/test_bad_inputs.py`.

Each case runs the real CLI in a subprocess. `setup(tmp)` may create files and
returns a dict whose keys, written `{key}` in `argv`, are replaced by its values.
The default expectation is the CLI contract: exit 2, one line on stderr that
starts with "alexnet-keras: error:" and contains `fragment`, no traceback.
`expect="skip"` is for inputs that are skipped and counted instead: exit 0 and
`fragment` somewhere in stdout or stderr.
"""

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: tuple
    fragment: str
    setup: Callable | None = None
    code: int = 2
    expect: str = "error"  # "error" (one line, exit `code`) or "skip" (exit 0, fragment printed)
    env: dict | None = None
    slow: bool = False


def case(id, argv, fragment, **kwargs):
    return Case(id, tuple(argv), fragment, **kwargs)
