"""The authors' pipeline on paper_cpu's own splits: DISTIL's model, training and strategies, seed by seed.

paper_cpu (our loop, the authors' protocol) found fewer rare images with FLMI than the authors' pipeline did when
it was run on its own splits (40.0 of 80 against 48.5, issue #9). This runs DISTIL's code on exactly paper_cpu's
splits and query sets, so that the two pipelines can be paired seed by seed and the gap told apart from the
spread between splits. What comes from DISTIL (a checkout given by --distil; its commit goes in the records):
its CIFAR ResNet-18 (`distil.utils.models.resnet`), its training loop `data_train` (weights reset to PyTorch's
defaults, SGD lr 0.01 momentum 0.9 wd 5e-4, cosine schedule over `n_epoch`, stop at 99% running training
accuracy, after `n_epoch - 1` epochs or when accuracy stalls for 10 epochs) with the transforms of its
PneumoniaMNIST rare-class tutorial (RandomCrop(32, padding=4), horizontal flip, normalised by the train split's
mean and std; selection and test at 28 px, unaugmented), and its strategies: SMI (fl1mi, fl2mi, gcmi, logdetmi on
submodlib, cosine kernels mapped to (1 + s) / 2, LazyGreedy), BADGE, entropy, random. What comes from us: the
splits (`build_scenario`), the rounds (4 of 20; the query set is the rare exemplars plus every rare image found
so far; the model is retrained from scratch each round, round 0 shared by the strategies of a seed) and the test
metrics (`classification_metrics`).

Records go to results/bench/authors_pipeline/<strategy>/seed<k>.json (read back when their parameters are equal).
Prints, per strategy, rare images picked of 80 in both pipelines and their paired difference (95% t interval);
saves the table to results/bench/authors_pipeline.json. About 4 minutes a run on 2 CPU threads.

    python benchmarks/authors_pipeline.py --distil /path/to/distil [--seeds 0 1 2] [--strategies flmi logdetmi]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from torch.utils.data import Dataset

from clinical_utils.active.loop import round_seed
from clinical_utils.experiments import build_scenario, configure, load_data
from clinical_utils.records import fingerprint, git_commit, read_json, record_path, write_json_atomic
from clinical_utils.stats import mean_interval
from clinical_utils.training.train import classification_metrics

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "results" / "paper_cpu"
OUT = ROOT / "results" / "bench" / "authors_pipeline"
SMI_NAMES = {"flmi": "fl1mi", "flqmi": "fl2mi", "gcmi": "gcmi", "logdetmi": "logdetmi"}
STRATEGIES = (*SMI_NAMES, "entropy", "badge", "random")
# DISTIL's arguments to data_train and to its strategies, as its PneumoniaMNIST tutorial sets them
TRAIN_ARGS = {"n_epoch": 25, "lr": 0.01, "batch_size": 20, "max_accuracy": 0.99, "optimizer": "sgd", "device": "cpu",
              "islogs": True}
SELECT_ARGS = {"batch_size": 20, "device": "cpu", "metric": "cosine", "optimizer": "LazyGreedy"}


class Images(Dataset):
    """uint8 images (N, 1, H, W) as DISTIL's datasets give them: transformed floats, with labels or without."""

    def __init__(self, images, labels, transform):
        self.images, self.transform = torch.as_tensor(images), transform
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.transform(self.images[i].float() / 255)
        return x if self.labels is None else (x, self.labels[i])


def seed_everything(seed: int) -> None:
    """DISTIL draws from the global generators: weights, batch order, crops and flips, BADGE's and random's picks."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@torch.no_grad()
def probabilities(model, dataset: Images, batch_size: int = 100) -> np.ndarray:
    """Softmax outputs (N, K) of `model` in eval mode on an unlabeled `dataset`."""
    model.eval()
    batches = (torch.stack([dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))])
               for lo in range(0, len(dataset), batch_size))
    return torch.cat([torch.softmax(model(batch), 1) for batch in batches]).numpy()


def run(strategy: str, seed: int, data, scenario, rounds: int, budget: int, initial: dict) -> dict:
    """One run of the authors' pipeline: per round the rare images picked, the training and the test metrics."""
    from distil.active_learning_strategies import BADGE, SMI, EntropySampling, RandomSampling
    from distil.utils.models.resnet import ResNet18
    from distil.utils.train_helper import data_train

    pixels = data.train.images.astype(np.float64) / 255  # the tutorial's statistics: the whole train split
    norm = T.Normalize((float(pixels.mean()),), (float(pixels.std(ddof=1)),))
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), norm])
    images, labels = data.train.images, data.train.labels
    rare = list(scenario.rare_classes)
    exemplars = scenario.exemplars[np.isin(data.val.labels[scenario.exemplars], rare)]
    test = Images(data.test.images[scenario.test], None, norm)
    labeled, in_pool, found, out = np.array(scenario.labeled), np.ones(len(scenario.pool), bool), [], []
    model = None
    for round_ in range(rounds + 1):
        rseed = round_seed(seed, round_)
        selected, select_seconds, predicted_rare = np.zeros(0, np.int64), 0.0, None
        if round_ > 0:
            pool = scenario.pool[in_pool]
            unlabeled = Images(images[pool], None, norm)
            query_idx = np.sort(np.array(found, dtype=np.int64))
            queries = Images(np.concatenate([data.val.images[exemplars], images[query_idx]]),
                             np.concatenate([data.val.labels[exemplars], labels[query_idx]]), norm)
            trained = Images(images[labeled], labels[labeled], norm)
            seed_everything(rseed)
            start = time.perf_counter()
            if strategy in SMI_NAMES:
                chooser = SMI(trained, unlabeled, queries, model, 2,
                              {**SELECT_ARGS, "smi_function": SMI_NAMES[strategy]})
            else:
                chooser = {"entropy": EntropySampling, "badge": BADGE, "random": RandomSampling}[strategy](
                    trained, unlabeled, model, 2, SELECT_ARGS)
            positions = np.asarray(chooser.select(budget), dtype=np.int64)
            select_seconds = time.perf_counter() - start
            predicted_rare = int(np.isin(probabilities(model, unlabeled).argmax(1), rare).sum())
            selected = pool[positions]
            labeled = np.sort(np.concatenate([labeled, selected]))
            in_pool[np.searchsorted(scenario.pool, selected)] = False
            found += [int(i) for i in selected if labels[i] in rare]
        if round_ == 0 and "state" in initial:
            model = ResNet18(num_classes=2, channels=1)
            model.load_state_dict(initial["state"])
            epochs, train_seconds = initial["epochs"], initial["seconds"]
        else:
            seed_everything(rseed)
            start = time.perf_counter()
            model, logs = data_train(Images(images[labeled], labels[labeled], train_tf),
                                     ResNet18(num_classes=2, channels=1), dict(TRAIN_ARGS)).train()
            epochs, train_seconds = len(logs), time.perf_counter() - start
            if round_ == 0:
                initial.update(state={k: v.clone() for k, v in model.state_dict().items()}, epochs=epochs,
                               seconds=train_seconds)
        probs = probabilities(model, test)
        metrics = classification_metrics(data.test.labels[scenario.test], probs)
        out.append({"round": round_, "selected": selected.tolist(),
                    "selected_per_class": np.bincount(labels[selected], minlength=2).tolist(),
                    "rare_class_accuracy": float(np.mean([metrics["per_class_accuracy"][c] for c in rare])),
                    "balanced_accuracy": metrics["balanced_accuracy"], "auc": metrics["auc"],
                    "train_epochs": epochs, "train_seconds": train_seconds, "select_seconds": select_seconds,
                    "pool_predicted_rare": predicted_rare})
    return {"rounds": out, "finished": True}


def rare_picked(record: dict, rare_classes) -> int:
    return int(sum(r["selected_per_class"][c] for r in record["rounds"] for c in rare_classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distil", type=Path, required=True, help="a checkout of decile-team/distil")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    args = parser.parse_args()
    if not (args.distil / "distil" / "utils" / "train_helper.py").exists():
        raise SystemExit(f"{args.distil} is not a DISTIL checkout (no distil/utils/train_helper.py): "
                         "git clone https://github.com/decile-team/distil and pass its folder")
    sys.path.insert(0, str(args.distil.resolve()))
    config = configure("pneumonia_binary", profile="paper_cpu", seeds=args.seeds, strategies=args.strategies)
    missing = [f"{s} seed {k}" for s in args.strategies for k in args.seeds
               if not record_path(OURS, "pneumonia_binary", s, k).exists()]
    if missing:
        raise SystemExit(f"{OURS} has no paper_cpu record to pair with for {', '.join(missing)}; "
                         "pass --seeds and --strategies it holds")
    data = load_data(config)
    commit = git_commit(args.distil)
    rows = []
    for seed in args.seeds:
        scenario, initial = build_scenario(data, config, seed), {}
        for strategy in args.strategies:
            parameters = {"strategy": strategy, "seed": seed, "rounds": config.rounds, "budget": config.budget,
                          "distil_commit": commit, "threads": torch.get_num_threads(), "train_args": TRAIN_ARGS,
                          "select_args": SELECT_ARGS, "scenario_sha1": fingerprint(
                              scenario.labeled, scenario.pool, scenario.exemplars, scenario.test)}
            path = record_path(OUT.parent, OUT.name, strategy, seed)  # OUT/<strategy>/seed<k>.json
            record = read_json(path) if path.exists() else None
            if record is None or record.get("parameters") != parameters:
                print(f"running {strategy} seed {seed}", flush=True)
                record = {"parameters": parameters,
                          **run(strategy, seed, data, scenario, config.rounds, config.budget, initial)}
                write_json_atomic(path, record)
            ours = read_json(record_path(OURS, "pneumonia_binary", strategy, seed))
            rare = scenario.rare_classes
            rows.append({"strategy": strategy, "seed": seed, "ours": rare_picked(ours, rare),
                         "authors": rare_picked(record, rare),
                         "ours_rare_acc": ours["rounds"][-1]["rare_class_accuracy"],
                         "authors_rare_acc": record["rounds"][-1]["rare_class_accuracy"]})
    table = []
    print(f"{'strategy':<10} {'ours per seed':>16} {'authors per seed':>18} {'authors - ours, 95% CI':>26}")
    for strategy in args.strategies:
        part = [r for r in rows if r["strategy"] == strategy]
        ours, theirs = [r["ours"] for r in part], [r["authors"] for r in part]
        mean, low, high = mean_interval(np.subtract(theirs, ours))
        table.append({"strategy": strategy, "seeds": [r["seed"] for r in part], "ours": ours, "authors": theirs,
                      "mean_difference": mean, "ci_low": low, "ci_high": high})
        print(f"{strategy:<10} {' / '.join(map(str, ours)):>16} {' / '.join(map(str, theirs)):>18} "
              f"{mean:+8.1f} [{low:+.1f}, {high:+.1f}]")
    write_json_atomic(ROOT / "results" / "bench" / "authors_pipeline.json",
                      {"distil_commit": commit, "rows": rows, "table": table})


if __name__ == "__main__":
    main()
