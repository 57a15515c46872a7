"""The nbval references must see selection: a deliberate change to one strategy makes them fail."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHANGED_RANDOM = """
import clinical_utils.selection.registry as registry

_real = registry.random_select
registry.random_select = lambda n, budget, seed: _real(n, budget, seed + 1)  # another random draw
"""


def test_a_changed_strategy_fails_the_notebook_regression_test(tmp_path, real_root):
    # sitecustomize runs in every Python started with this PYTHONPATH, the notebook's kernel included
    (tmp_path / "sitecustomize.py").write_text(CHANGED_RANDOM)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "tests/notebooks/pneumonia_binary.ipynb"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "Cell outputs differ" in done.stdout and "report.picks_table(records" in done.stdout  # the picks table
