"""A plain, non-editable install ships simulations/ as alexnet_keras.simulations."""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_non_editable_install_has_simulations(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
         "--target", str(target), str(REPO)],
        check=True, capture_output=True, timeout=600,
    )
    assert (target / "alexnet_keras" / "simulations" / "__init__.py").is_file()
    assert not (target / "simulations").exists()  # no generic top-level module
    data = list((target / "alexnet_keras" / "simulations").glob("data/*.csv"))
    assert data, "simulation data files were not installed"
    assert (target / "alexnet_keras" / "resources" / "imagenet_classes.csv").is_file()
    code = (
        "import alexnet_keras, alexnet_keras.simulations as s, importlib.resources as r; "
        "assert alexnet_keras.__file__.startswith(%r); "
        "print(sorted(p.name for p in r.files(s).joinpath('data').iterdir()))" % str(target)
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert ".csv" in out.stdout
