"""The robustness sweep's committed tables are what its committed records say (benchmarks/sweep.py --table)."""
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import sweep  # noqa: E402


@pytest.mark.skipif(not (sweep.RESULTS / "targets.csv").exists(), reason="no committed sweep")
def test_the_committed_tables_follow_from_the_committed_records():
    rows = sweep.table(sweep.finals())
    committed = pd.read_csv(sweep.RESULTS / "table.csv")
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), committed, check_dtype=False, atol=1e-4)
    targets = pd.read_csv(sweep.RESULTS / "targets.csv")
    pd.testing.assert_frame_equal(sweep.targets(rows), targets, check_dtype=False, atol=1e-4)
    paper = targets.set_index("recipe").loc["paper"]
    assert paper["settings"] == len(sweep.SETTINGS)  # the reference recipe ran everywhere


def test_every_recipe_is_parameters_every_clinical_notebook_takes():
    from clinical_utils.experiments import configure

    for recipe, params in sweep.RECIPES.items():
        for name, overrides in sweep.SETTINGS:
            configure(name, profile="quick", **overrides, **params)
