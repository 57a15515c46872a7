"""The strategy registry: every strategy reads only what it declares, and a new one is one function and one line."""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from clinical_utils.selection import INPUTS, STRATEGIES, SelectionError, Strategy, pick

ROOT = Path(__file__).resolve().parents[1]


class OnlyWhatIsDeclared(SimpleNamespace):
    """Inputs that fail loudly when a strategy reads an attribute it did not declare."""

    def __getattr__(self, name):
        raise AssertionError(f"read {name!r}, which its needs do not name")


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_reads_only_what_it_declares(name):
    rng = np.random.default_rng(0)
    n, d, k = 30, 4, 3
    probs = rng.dirichlet(np.ones(k), n).astype(np.float32)
    everything = {"probs": probs, "features": rng.normal(size=(n, d)).astype(np.float32),
                  "mc_probs": np.stack([probs] * 4), "labeled_features": rng.normal(size=(5, d)).astype(np.float32),
                  "pool_embedding": rng.normal(size=(n, d)).astype(np.float32),
                  "query_embedding": rng.normal(size=(3, d)).astype(np.float32),
                  "private_embedding": rng.normal(size=(2, d)).astype(np.float32), "smi_params": {},
                  "smi_function": "flqmi", "given_labels": rng.integers(0, k, n)}
    assert set(everything) == set(INPUTS)
    strategy = STRATEGIES[name]
    picks = pick(name, OnlyWhatIsDeclared(n=n, **{need: everything[need] for need in strategy.needs}), 7, seed=3)
    assert picks.dtype == np.int64 and len(set(picks.tolist())) == 7


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("budget", [0, 31])
def test_every_strategy_refuses_a_budget_outside_the_pool(name, budget):
    with pytest.raises(SelectionError, match="budget"):
        pick(name, OnlyWhatIsDeclared(n=30), budget)


def test_a_strategy_with_an_unknown_family_or_input_is_refused():
    with pytest.raises(ValueError, match="family 'guess'"):
        Strategy("guess", ("probs",), lambda x, budget, seed: None, "#000000", "o")
    with pytest.raises(ValueError, match="'logits'"):
        Strategy("uncertainty", ("logits",), lambda x, budget, seed: None, "#000000", "o")


ADD_ONE = """
import sys
import numpy as np
from clinical_utils.selection import registry

# the one function and the one registry line
def darkest_first(x, budget, seed):
    return np.argsort(x.probs[:, 0], kind="stable")[:budget]
registry.STRATEGIES["darkest"] = registry.Strategy("uncertainty", ("probs",), darkest_first, "#123456", "*")

from clinical_utils import data as D, experiments, report
from clinical_utils.active import loop
from clinical_utils.refinement import refine
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig

assert "darkest" in loop.STRATEGIES and "darkest" in refine.SAMPLERS, (loop.STRATEGIES, refine.SAMPLERS)
assert report.PALETTE["darkest"] == "#123456" and report.MARKERS["darkest"] == "*" and "darkest" in report.HUE_ORDER
assert experiments.configure("breast_binary", strategies=["darkest"], results_dir=None).strategies == ["darkest"]
config = TrainConfig(epochs=1, batch_size=32, optimizer="adam", lr=3e-3)
blood = D.load_medmnist("bloodmnist", root=sys.argv[1], verify=False)
scenario = D.binary_imbalance(blood, rare_classes=[6, 7], ratio=5, labeled_per_class=10, pool_per_class=20,
                              exemplars_per_class=3, seed=0)
record = loop.run_active_learning(blood, scenario, "darkest", rounds=1, budget=6, train_config=config, seed=1,
                                  device="cpu")
assert len(record["rounds"][1]["selected"]) == 6
images = blood.train.images[:200]
true = blood.train.labels[:200]
noisy = (true + (np.arange(200) % 3 == 0)) % 8
kept = noisy == true
refined = refine.run_label_refinement(build_model("small_cnn", 3, 8, seed=0), images, noisy, true, kept,
                                      blood.test.images[:50], blood.test.labels[:50], "darkest", rounds=1, budget=5,
                                      finetune=config, rare_classes=[6], device="cpu")
assert len(refined["rounds"][1]["selected"]) == 5 and not kept[refined["rounds"][1]["selected"]].any()
print("ok")
"""


def test_a_new_strategy_is_one_function_and_one_registry_line(fixture_root):
    """Registered before the rest of the package is imported (as a line in registry.py is), a strategy is one the
    loop and label refinement run, the notebooks' parameters accept and the figures colour."""
    done = subprocess.run([sys.executable, "-c", ADD_ONE, str(fixture_root)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
