"""The CLI's contract: help, summary, JSON, and one-line errors with exit 2."""

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "alexnet_keras_cli"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands_without_loading_a_backend():
    result = run("--help")
    assert result.returncode == 0
    assert "summary" in result.stdout
    code = "import sys, alexnet_keras_cli; assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_choice_lists_come_from_constants():
    from alexnet_keras.cli import cli
    from alexnet_keras.constants import VARIANTS

    variant = next(p for p in cli.commands["summary"].params if p.name == "variant")
    assert tuple(variant.type.choices) == VARIANTS


def test_summary_table_totals():
    result = run("summary")
    assert result.returncode == 0, result.stderr
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    assert "60,965,224" in total and "659,272" in total


def test_summary_json():
    result = run("summary", "--variant", "owt", "--json")
    data = json.loads(result.stdout)
    assert data["totals"]["params"] == 61_100_840
    assert data["totals"]["flops"] == 2 * data["totals"]["macs"]
    conv1 = next(row for row in data["layers"] if row["name"] == "conv1")
    assert conv1["output_shape"] == [55, 55, 64] and conv1["macs"] == 55 * 55 * 64 * 11 * 11 * 3


@pytest.mark.parametrize("args", [("--bogus",), ("summary", "--variant", "2013"), ("nosuchcommand",)])
def test_bad_input_is_one_line_and_exit_2(args):
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alexnet-keras: error:"), result.stderr
    assert "Traceback" not in result.stderr
