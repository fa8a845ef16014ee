"""One table of bad inputs, each run through the CLI in a subprocess.

Every case must end with a clear single line and exit 2 (or be skipped and
counted), never a traceback. Cases live beside their area in `badinputs_*.py`;
add new ones there.
"""

import os
import subprocess
import sys

import pytest

import badinputs_data
import badinputs_eval
import badinputs_search
import badinputs_train

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
CASES = badinputs_train.CASES + badinputs_data.CASES + badinputs_eval.CASES + badinputs_search.CASES


def _params():
    for c in CASES:
        marks = [pytest.mark.slow] if c.slow else []
        yield pytest.param(c, id=c.id, marks=marks)


def test_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("c", list(_params()))
def test_bad_input(c, tmp_path):
    values = c.setup(tmp_path) if c.setup else {}
    argv = [str(a).format(**values) for a in c.argv]
    env = {**os.environ, **(c.env or {})}
    result = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if c.expect == "skip":
        assert result.returncode == 0, result.stderr[-3000:]
        assert c.fragment in result.stdout + result.stderr
        return
    assert result.returncode == c.code, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("alexnet-keras: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert c.fragment.lower() in errors[0].lower(), errors[0]
