"""The one experiment registry of both papers: every notebook parameter declared once (`parameters`, `clinical`,
`refinement`, and `labeling` for the labeling notebook), every experiment and profile (`registry`), and
`configure`, which resolves and checks a notebook's parameters. The functions that run a configured experiment
are re-exported here, where notebooks import them.
"""
import warnings

from ..active.run import build_scenario, check_pool, run_experiment
from ..refinement.run import (KEEPS_ALL, METHODS, load_phase1_records, noisy_split, recall_frame,
                              run_noisy_experiment)
from .clinical import Config
from .labeling import LabelingSettings
from .parameters import Parameter
from .refinement import NoisyConfig
from .registry import (EXPERIMENTS, OFFLINE, PAPERS, PROFILES, TOOLS, Experiment, Paper, configure, experiment,
                       load_data, of_paper, parameters_of, profile_values, seed_records)

__all__ = ["EXPERIMENTS", "KEEPS_ALL", "METHODS", "OFFLINE", "PAPERS", "PROFILES", "TOOLS", "Config", "Experiment",
           "LabelingSettings", "NoisyConfig", "Paper", "Parameter", "build_scenario", "check_pool", "configure",
           "experiment", "load_data", "load_phase1_records", "noisy_split", "of_paper", "parameters_of",
           "profile_values", "recall_frame", "run_experiment", "run_noisy_experiment", "seed_records"]

# what clinical_utils.noisy_experiments called them: one configure and one profile_values serve both papers now
RENAMED = {"configure_noisy": "configure", "noisy_profile_values": "profile_values"}


def __getattr__(name: str):
    if name in RENAMED:
        warnings.warn(f"{name} is now {RENAMED[name]}, for both papers", DeprecationWarning, stacklevel=2)
        return globals()[RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
