"""Running a CLINICAL experiment: each seed's scenario, checked against the budget, then every (seed, strategy)
run of the active-learning loop, its records under results_dir/<experiment>/<strategy>/seed<k>.json."""
from __future__ import annotations

from pathlib import Path

from ..data import MedMNIST, Scenario, binary_imbalance, long_tail
from ..params import ConfigError
from ..progress import progress_bar
from ..records import record_path, results_folder
from .loop import run_active_learning

# config: an `experiments.clinical.Config` (configure's), read here by attribute


def build_scenario(data: MedMNIST, config, seed: int) -> Scenario:
    """The seeded split for one seed: each seed draws its own labeled set, pool and exemplars."""
    if config.setting == "binary":
        return binary_imbalance(data, config.rare_classes, config.imbalance, config.labeled, config.pool,
                                config.exemplars_per_class, config.balanced_test, seed)
    return long_tail(data, config.imbalance, config.labeled, config.pool, order=config.order,
                     rare_classes=config.rare_classes,
                     exemplars_per_class=config.exemplars_per_class, balanced_test=config.balanced_test, seed=seed)


def seed_records(results_dir: str | Path, config, seed: int) -> list[Path]:
    """The records one seed of the experiment writes: one per strategy."""
    return [record_path(results_dir, config.experiment, strategy, seed) for strategy in config.strategies]


def check_pool(data: MedMNIST, config) -> dict[int, Scenario]:
    """Every seed's scenario, once each pool is known to hold `rounds` x `budget` images (else a ConfigError
    naming the numbers and what to change): before any model trains."""
    scenarios = {seed: build_scenario(data, config, seed) for seed in config.seeds}
    for seed, scenario in scenarios.items():
        if config.rounds * config.budget > len(scenario.pool):
            raise ConfigError(f"{config.experiment}: {config.rounds} rounds of budget {config.budget} pick "
                              f"{config.rounds * config.budget} images, but seed {seed}'s pool holds "
                              f"{len(scenario.pool)}; lower budget or rounds, or raise pool_per_class (pool_max)")
    return scenarios


def run_experiment(data: MedMNIST, config, progress: bool | None = None) -> list[dict]:
    """Every (seed, strategy) run of the experiment; finished records are read back, not re-run.

    Records go to results_dir/<experiment>/<strategy>/seed<k>.json, written after every round.
    """
    scenarios = check_pool(data, config)
    with results_folder(config.results_dir) as results_dir:  # None: a temporary folder, removed afterwards
        runs = [(seed, strategy) for seed in config.seeds for strategy in config.strategies]
        records, initial_models, previous = [], {}, None
        for seed, strategy in progress_bar(runs, config.experiment, progress):
            if seed != previous:
                initial_models.clear()  # round 0 is shared within a seed only: keep one model's weights
                previous = seed
            records.append(run_active_learning(
                data, scenarios[seed], strategy, rounds=config.rounds, budget=config.budget, model_name=config.model,
                train_config=config.train, seed=seed, device=config.device, queries=config.queries, progress=False,
                experiment=config.experiment, embedding=config.embedding, initial_models=initial_models,
                pretrain=config.pretrain, pretrain_cache=Path(results_dir) / "pretrained",
                record_path=record_path(results_dir, config.experiment, strategy, seed)))
        return records
