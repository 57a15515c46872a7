"""Which pool embedding should SMI compare with the rare queries? Paired over seeds, per SMI function.

The authors embed each pool image by the loss gradient at its *predicted* label, the queries at their true (rare)
label. When the picking model predicts every pool image common, those two kinds of vectors point apart and the
kernel ranks the rare-looking pool images last. `gradients_rare` embeds each pool image at its likeliest rare
label instead; `features` compares penultimate features. This runs the quick profile's SMI functions with the
other embeddings and compares each with the authors' `gradients`, seed by seed (mean difference of rare images
found and of the final rare-class accuracy, 95% t interval).

The `gradients` records are the batch's (results/runs/quick, `python -m clinical_utils.reproduce`); the others are
computed into results/bench/embedding/<embedding>/ (records are read back when they exist). Prints a table and
saves results/bench/embedding_choice.json. About 25 minutes per embedding on 1 CPU thread.

    python benchmarks/embedding_choice.py [--experiments pneumonia_binary breast_binary] [--embeddings gradients_rare]
"""
import argparse
from pathlib import Path

import pandas as pd

from clinical_utils import report
from clinical_utils.experiments import configure, load_data, run_experiment
from clinical_utils.records import write_json_atomic
from clinical_utils.selection import FUNCTIONS
from clinical_utils.stats import final_values, mean_interval

ROOT = Path(__file__).resolve().parent.parent
AUTHORS = ROOT / "results" / "runs" / "quick"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["pneumonia_binary", "breast_binary"])
    parser.add_argument("--embeddings", nargs="+", default=["gradients_rare"])
    args = parser.parse_args()
    frames = []
    for name in args.experiments:
        authors = configure(name, strategies=list(FUNCTIONS), results_dir=str(AUTHORS))
        if not all((AUTHORS / name / s / f"seed{k}.json").exists() for s in FUNCTIONS for k in authors.seeds):
            raise SystemExit(f"no quick-profile records for {name} under {AUTHORS}: run "
                             f"`python -m clinical_utils.reproduce --only {name}` first")
        frames.append(report.rounds_frame(run_experiment(load_data(authors), authors, progress=False))
                      .assign(embedding="gradients"))
        for embedding in args.embeddings:
            config = configure(name, strategies=list(FUNCTIONS), embedding=embedding,
                               results_dir=str(ROOT / "results" / "bench" / "embedding" / embedding))
            frames.append(report.rounds_frame(run_experiment(load_data(config), config))
                          .assign(embedding=embedding))
    final = final_values(pd.concat(frames, ignore_index=True))
    rows = []
    for (name, strategy), part in final.groupby(["experiment", "strategy"]):
        for metric in ("rare_picked_total", "rare_class_accuracy"):
            wide = part.pivot_table(index="seed", columns="embedding", values=metric, aggfunc="first")
            for embedding in args.embeddings:
                both = wide[["gradients", embedding]].dropna()
                mean, low, high = mean_interval(both[embedding] - both["gradients"])
                rows.append({"experiment": name, "strategy": strategy, "embedding": embedding, "metric": metric,
                             "gradients": float(both["gradients"].mean()), "other": float(both[embedding].mean()),
                             "mean_difference": mean, "ci_low": low, "ci_high": high, "seeds": len(both)})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.round(3).to_string(index=False))
    write_json_atomic(ROOT / "results" / "bench" / "embedding_choice.json", {"rows": rows})


if __name__ == "__main__":
    main()
