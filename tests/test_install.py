"""A plain, non-editable install ships simulations/ as alexnet_keras.simulations, and a checkout runs after it."""

import os
import pathlib
import site
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# simulations/ sits at the top of the repository and installs inside the package.
SOURCES = {REPO / "alexnet_keras": "alexnet_keras", REPO / "simulations": "alexnet_keras.simulations"}


def pip_install_target(target):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )


def test_non_editable_install_has_simulations(tmp_path):
    target = tmp_path / "site"
    pip_install_target(target)
    assert (target / "alexnet_keras" / "simulations" / "__init__.py").is_file()
    assert not (target / "simulations").exists()  # no generic top-level module
    data = list((target / "alexnet_keras" / "simulations").glob("data/*.csv"))
    assert data, "simulation data files were not installed"
    assert (target / "alexnet_keras" / "resources" / "imagenet_classes.csv").is_file()
    assert (target / "alexnet_keras_cli.py").is_file()  # the console script's launcher
    installed = {p.relative_to(target).as_posix() for p in (target / "alexnet_keras").rglob("*.py")}
    in_tree = {p.relative_to(REPO).as_posix() for p in (REPO / "alexnet_keras").rglob("*.py")}
    assert in_tree <= installed, f"not installed: {sorted(in_tree - installed)}"
    code = (
        "import alexnet_keras, alexnet_keras.simulations as s, importlib.resources as r; "
        f"assert alexnet_keras.__file__.startswith({str(target)!r}); "
        "print(sorted(p.name for p in r.files(s).joinpath('data').iterdir()))"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert ".csv" in out.stdout


def test_pyproject_lists_every_package():
    """setuptools installs only the listed packages: a new folder must be added to pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    in_tree = set()
    for folder, prefix in SOURCES.items():
        for sub in [folder, *folder.rglob("*")]:
            if sub.is_dir() and "__pycache__" not in sub.parts and any(f.is_file() for f in sub.iterdir()):
                in_tree.add(".".join((prefix, *sub.relative_to(folder).parts)))
    assert listed == in_tree, (
        f"add to [tool.setuptools] packages: {sorted(in_tree - listed)}; remove: {sorted(listed - in_tree)}"
    )


@pytest.mark.slow
def test_checkout_runs_after_a_plain_install(tmp_path):
    """Issue 12 item 8: after `pip install .`, `python -m benchmarks.cpu` works from the repository root.

    There the checkout's alexnet_keras/ shadows the installed package and has no
    simulations/ inside. The interpreter runs with -S (no .pth files, so no
    editable-install finder) on the installed copy and the environment's
    dependencies: what a fresh venv with `pip install .` sees.
    """
    target = tmp_path / "site"
    pip_install_target(target)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), *site.getsitepackages()]), TF_CPP_MIN_LOG_LEVEL="3")
    code = (
        "import sys, alexnet_keras, alexnet_keras.simulations.memory as m; "
        "assert not any('editable' in repr(f).lower() for f in sys.meta_path), sys.meta_path; "
        "print(alexnet_keras.__file__); print(m.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    package, memory = (pathlib.Path(line) for line in result.stdout.split())
    assert package == REPO / "alexnet_keras" / "__init__.py"  # the checkout shadows the install, as for users
    assert memory == REPO / "simulations" / "memory.py"
    result = subprocess.run(
        [sys.executable, "-S", "-m", "benchmarks.cpu", "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage: python -m benchmarks.cpu" in result.stdout
