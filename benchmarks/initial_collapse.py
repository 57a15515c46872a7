"""How often is the initial model collapsed (rare-class test accuracy 0: it never predicts a rare class)?

For each offline CLINICAL experiment and seeds 0-9, trains only round 0 (the model every strategy of a seed starts
from, exactly as the loop trains it: the quick profile's precision, one thread) under several training rules, the
class-balanced loss among them, and counts collapsed seeds. Prints a table and saves
results/bench/initial_collapse.json. About 5 minutes.

    python benchmarks/initial_collapse.py
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from clinical_utils.active.loop import round_seed
from clinical_utils.batch.environment import restart_in_batch_environment
from clinical_utils.experiments import build_scenario, configure, load_data
from clinical_utils.training.models import build_model
from clinical_utils.training.train import classification_metrics, predict, train

torch.set_num_threads(1)  # as the batch trains: records and these counts then agree

EXPERIMENTS = ("pneumonia_binary", "breast_binary", "retina_longtail")
SEEDS = list(range(10))
# name: the training rule (epochs None: the quick profile's fixed epoch count before the authors' rule)
RULES = {
    "fixed epochs (quick before)": {"target_train_accuracy": None, "epochs": None},
    "until 0.99, cap 30": {"target_train_accuracy": 0.99, "epochs": 30},
    "until 0.99, cap 60": {"target_train_accuracy": 0.99, "epochs": 60},
    "until 0.99, cap 30, balanced loss": {"target_train_accuracy": 0.99, "epochs": 30, "class_weight": "balanced"},
}
OLD_EPOCHS = {"breast_binary": 30}  # the quick profile's fixed epochs before this change (others: 10)


def main() -> None:
    restart_in_batch_environment()
    out = []
    for name in EXPERIMENTS:
        for rule, overrides in RULES.items():
            epochs = overrides["epochs"] or OLD_EPOCHS.get(name, 10)  # None: the old fixed epoch count
            config = configure(name, profile="quick", seeds=SEEDS, epochs=epochs,
                               target_train_accuracy=overrides["target_train_accuracy"],
                               class_weight=overrides.get("class_weight"))
            data = load_data(config)
            rare, balanced, trained = [], [], []
            for seed in SEEDS:
                scenario = build_scenario(data, config, seed)
                model = build_model(config.model, data.n_channels, data.n_classes, data.size,
                                    seed=round_seed(seed, 0))
                fit = train(model, data.train.images[scenario.labeled], data.train.labels[scenario.labeled],
                            config.train, "cpu", round_seed(seed, 0), False)
                metrics = classification_metrics(data.test.labels[scenario.test],
                                                  predict(model, data.test.images[scenario.test], "cpu"))
                rare.append(float(np.mean([metrics["per_class_accuracy"][c] for c in scenario.rare_classes])))
                balanced.append(metrics["balanced_accuracy"])
                trained.append(fit.epochs)
            row = {"experiment": name, "rule": rule, "epochs": config.train.epochs,
                   "target_train_accuracy": config.train.target_train_accuracy,
                   "class_weight": config.train.class_weight,
                   "precision": config.train.for_device(torch.device("cpu")).precision, "seeds": len(SEEDS),
                   "collapsed": int(sum(r == 0 for r in rare)), "rare_class_accuracy": rare,
                   "balanced_accuracy": balanced, "epochs_trained": trained}
            out.append(row)
            print(f"{name:17} {rule:34} collapsed {row['collapsed']:2d}/{len(SEEDS)}  rare-class acc mean "
                  f"{np.mean(rare):.3f}  balanced acc {np.mean(balanced):.3f}  epochs {np.mean(trained):.1f}",
                  flush=True)
    path = Path("results/bench/initial_collapse.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"saved {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
