"""Write the experiment notebooks and summary.ipynb from one template, without outputs.

The notebooks differ only in their title and `parameters` cell, so they are generated, not edited by hand:
change the template here, run `python notebooks/make_notebooks.py`, then `make reproduce` to fill the outputs
and `make test-notebooks` to refresh the nbval references.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from clinical_utils.experiments import EXPERIMENTS, configure, of_paper, parameters_of, profile_values

HERE = Path(__file__).resolve().parent

def _parameters_cell(name: str, headings: dict | None = None) -> nbformat.NotebookNode:
    """The parameters cell: every value written out, the quick profile's, with its one-line doc beside it (both
    from the experiment registry); headings: a comment line before the parameter it names."""
    values, headings = profile_values(name, "quick"), headings or {}
    lines = []
    for p in parameters_of(name):
        lines += [headings[p.name]] if p.name in headings else []
        lines.append(f"{p.name} = {values[p.name]!r}" + (f"  # {p.doc}" if p.doc else ""))
    cell = new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["parameters"]
    return cell


def _arguments(name: str) -> str:
    return ", ".join(f"{p.name}={p.name}" for p in parameters_of(name))


def noisy_notebook(name: str) -> nbformat.NotebookNode:
    title, about = configure(name).title(), EXPERIMENTS[name].about
    cells = [
        new_markdown_cell(
            f"# Active label refinement: {title}\n\n{about}\n\n"
            "Phase 1 learns from the noisy labels four ways: cross-entropy, Co-teaching (two networks, each "
            "training on the small-loss samples its peer keeps), Co-teaching + VOG (some kept samples chosen "
            "by lowest Variance of Gradients, so that clean minority-class samples, whose loss is large, are not "
            "all discarded; Khanal et al., MICCAI 2024) and confident learning, the field's standard tool "
            "(cleanlab flags labels on out-of-sample probabilities from `cl_folds`-fold cross-validation; a "
            "network is trained on the rest). Phase 2 starts from `phase2_from`: each round a sampler picks "
            "`budget` samples among those phase 1 set aside, the simulated expert gives their true labels, and "
            "the network is fine-tuned. Samplers: the active-learning baselines, `loss`, cleanlab's "
            "`label_quality` and `activelab` rankings, and SMI with the minority classes as queries.\n\n"
            f"Run it here or in the batch: `python -m clinical_utils.batch --only {name}`."),
        _parameters_cell(name),
        new_code_cell(
            "import matplotlib.pyplot as plt\nimport pandas as pd\nfrom IPython.display import Markdown\n\n"
            "from clinical_utils import report\nfrom clinical_utils.refinement.noise import noise_report\n"
            "from clinical_utils.experiments import configure, load_data, noisy_split, recall_frame, "
            "run_noisy_experiment\n\n"
            f"config = configure({name!r}, {_arguments(name)})\n"
            'pd.set_option("display.max_colwidth", None)\nconfig.table()'),
        new_markdown_cell("## The noise\nPer true class of the first seed's training subset: images, labels "
                          "made wrong and the realised rate; per given label, the share that is wrong."),
        new_code_cell("data = load_data(config)\nsplit = noisy_split(data, config, seed=config.seeds[0])\n"
                      "print('minority classes:', [data.class_names[c] for c in split.rare_classes])\n"
                      "noise_report(split.true, split.noisy, data.class_names)"),
        new_markdown_cell("## The runs\nPhase 1 (four methods), then phase 2 (every sampler), per seed; finished "
                          "runs are read back from their records."),
        _ignored_output("phase1, phase2 = run_noisy_experiment(data, config)"),
        new_markdown_cell("## Phase 1: which clean samples each method kept\nRecall: the share of truly clean "
                          "samples of each class that were kept as clean (mean and 95% CI over seeds). The paper's claim "
                          "is about the minority classes' recall (marked *). The samples set aside, read as a "
                          "detector of wrong labels over those given each label: flag precision (the share of them "
                          "that is wrong) and flag recall (the share of the wrong labels set aside). Each method's "
                          "clean recall against Co-teaching + VOG and against confident learning, paired by seed."),
        new_code_cell("recall = recall_frame(phase1)\nminority = [data.class_names[c] for c in split.rare_classes]\n"
                      "report.recall_plot(recall, title=config.title(), minority=minority)\nplt.show()\n"
                      "report.detector_table(recall, minority)"),
        new_markdown_cell("## Phase 2: balanced accuracy against the relabeling budget"),
        new_code_cell("frame = report.rounds_frame(phase2)\nreport.budget_curves(frame, title=config.title())\n"
                      "plt.show()\nreport.refinement_table(frame).loc[config.experiment]"),
        new_code_cell("report.per_class_curves(report.per_class_frame(phase2, data.class_names), "
                      "title=config.title())\nplt.show()"),
        new_markdown_cell("## Corrected images\nSamples the SMI sampler sent to the expert whose given label was "
                          "wrong: given label, then true label."),
        new_code_cell("shown = next((r for r in phase2 if r['parameters']['strategy'] == 'smi'), phase2[0])\n"
                      "report.corrected_images(data, split.train, split.noisy, shown)\nplt.show()"),
        new_code_cell("Markdown(report.refinement_findings(frame, recall, minority))"),
    ]
    return _notebook(cells)


def experiment_notebook(name: str) -> nbformat.NotebookNode:
    title, about = configure(name).title(), EXPERIMENTS[name].about
    cells = [
        new_markdown_cell(
            f"# CLINICAL: {title}\n\n{about}\n\n"
            "Each round the model trained on the labeled set embeds the unlabeled pool and the query set (the "
            "labeled rare-class exemplars, growing with every rare image found) as gradient embeddings; each "
            "strategy picks `budget` images, the simulated expert labels them, and the model is retrained from "
            "scratch and tested. SMI functions (FLMI, FLQMI, GCMI, LogDetMI, FLCMI, LogDetCMI) target the rare "
            "classes; the baselines (random, entropy, margin, least confidence, BALD, BADGE, core-set) do not.\n\n"
            "Run it here (Kernel > Restart & Run All) or in the batch: `python -m clinical_utils.batch --only "
            f"{name}`. Finished runs are read back from their records, not re-run."),
        _parameters_cell(name),
        new_code_cell(
            "import matplotlib.pyplot as plt\nimport numpy as np\nimport pandas as pd\nfrom IPython.display import Markdown\n\n"
            "from clinical_utils import report\n"
            "from clinical_utils.experiments import build_scenario, configure, load_data, run_experiment\n\n"
            f"config = configure({name!r}, {_arguments(name)})\n"
            'pd.set_option("display.max_colwidth", None)\nconfig.table()'),
        new_markdown_cell("## The scenario\nPer-class counts of the first seed's split: the initial labeled set, "
                          "the unlabeled pool, the exemplars (from `val`) and the test set."),
        new_code_cell("data = load_data(config)\nscenario = build_scenario(data, config, seed=config.seeds[0])\n"
                      "scenario.counts"),
        new_code_cell("report.class_examples(data, np.concatenate([scenario.labeled, scenario.pool]))\nplt.show()"),
        new_markdown_cell("## The runs\nOne run per seed and strategy; each writes its record after every round."),
        _ignored_output("records = run_experiment(data, config)"),
        new_markdown_cell("## Rare-class accuracy and rare images found\nMean and 95% confidence interval over "
                          "seeds; SMI functions on the left, baselines on the right, random in both."),
        new_code_cell("frame = report.rounds_frame(records)\n"
                      "report.round_curves(frame, title=config.title())\nplt.show()"),
        new_code_cell("report.per_class_curves(report.per_class_frame(records, data.class_names), "
                      "title=config.title())\nplt.show()"),
        new_markdown_cell("## Final round\nmean ± sd over seeds, best rare-class accuracy first; `rare picked` is the "
                          "total over all rounds."),
        new_code_cell("report.final_table(frame).loc[config.experiment]"),
        new_markdown_cell("## What each strategy picked in the first round\nPeople judge a selection by looking "
                          "at it: rare-class images are framed in red."),
        new_code_cell("report.picked_images(data, records, round_=1, seed=config.seeds[0])\nplt.show()"),
        new_markdown_cell("The same as numbers: rare images picked in each round, and the first pool indices each "
                          "strategy picked in round 1."),
        new_code_cell("report.picks_table(records, round_=1, seed=config.seeds[0])"),
        new_code_cell("Markdown(report.findings(frame))"),
    ]
    return _notebook(cells)


def summary_notebook() -> nbformat.NotebookNode:
    params = new_code_cell(
        'results_dir = "../results/quick"  # records (<results_dir>/<experiment>/<strategy>/seed<k>.json): the '
        'reference; a batch run: "../results/runs/quick"\n'
        'figures_dir = "../figures"  # PNG and SVG of every figure (None: a temporary folder)\n'
        'tables_dir = "../results/quick/summary"  # paired.csv (None: a temporary folder)\n'
        "experiments = None  # a list of experiment names, or None for every one with records")
    params.metadata["tags"] = ["parameters"]
    cells = [
        new_markdown_cell(
            "# Summary of every run\n\nReads every run record under `results_dir` (by default the committed "
            "reference). First one section per experiment: what its numbers show, in words generated from them; "
            "the paired differences to random and to the best baseline; the curves over rounds; per-class "
            "accuracy. Then the tables across experiments. Bands and whiskers are 95% confidence intervals over "
            "seeds; every figure is saved to `figures_dir` as PNG and SVG, the paired differences to "
            "`tables_dir/paired.csv`."),
        params,
        new_code_cell(
            "import tempfile\n\nimport matplotlib.pyplot as plt\nimport pandas as pd\n"
            "from IPython.display import Markdown, display\n\n"
            "from clinical_utils import report, stats\nfrom clinical_utils.data import class_names\n"
            "from clinical_utils.experiments import configure, load_phase1_records, of_paper, recall_frame\n\n"
            "records = report.load_records(results_dir)\n"
            "found = sorted({r['parameters']['experiment'] for r in records})\n"
            "experiments = found if experiments is None else experiments\n"
            "missing = sorted(set(experiments) - set(found))\n"
            "assert not missing, f'no records for {missing} under {results_dir}; run them first'\n"
            "figures_dir = figures_dir or tempfile.mkdtemp(prefix='clinical-utils-figures-')\n"
            "tables_dir = tables_dir or tempfile.mkdtemp(prefix='clinical-utils-tables-')\n"
            "frame = report.rounds_frame([r for r in records if r['parameters']['experiment'] in experiments])\n"
            "recalls = {name: recall_frame(load_phase1_records(results_dir, name))\n"
            "           for name in experiments if name in of_paper('refinement')}\n"
            "paired = pd.concat([stats.paired_table(frame)] + [stats.paired_recall(recall, experiment=name)\n"
            "                                                  for name, recall in recalls.items()], ignore_index=True)\n"
            "report.save_csv(paired, f'{tables_dir}/paired.csv')\n"
            "minorities = {}  # per label-refinement experiment: its clean-recall frame and minority class names\n"
            "for name, recall in recalls.items():\n"
            "    first = next(r for r in records if r['parameters']['experiment'] == name)\n"
            "    names = class_names(first['parameters']['dataset'])\n"
            "    minorities[name] = (recall, [names[c] for c in first['rare_classes']])\n"
            "report.run_overview(frame)"),
        new_code_cell("Markdown(report.headline(frame, minorities))"),
        new_code_cell(
            "saved = []\nfor name in experiments:\n"
            "    mine = [r for r in records if r['parameters']['experiment'] == name]\n"
            "    part = frame[frame['experiment'] == name]\n"
            "    names = class_names(mine[0]['parameters']['dataset'])\n"
            "    noisy = name in of_paper('refinement')\n"
            "    title = configure(name).title()\n"
            "    run = mine[0]['parameters']  # the runs' own model and rounds: paper_cpu's figures say theirs\n"
            "    title += f\" ({run.get('model') or run['phase1']['model']}, {run['rounds']} rounds of {run['budget']})\"\n"
            "    display(Markdown(f'## {title}\\n`{name}`'))\n"
            "    metric = 'balanced_accuracy' if noisy else 'rare_picked_total'\n"
            "    rows = paired[(paired['experiment'] == name) & (paired['metric'] == metric)]\n"
            "    if noisy:\n"
            "        minority = [names[c] for c in mine[0]['rare_classes']]\n"
            "        display(Markdown(report.refinement_findings(part, recalls[name], minority)))\n"
            "        figures = {'recall': report.recall_plot(recalls[name], title=f'{title}: clean samples kept by phase 1',\n"
            "                                                minority=minority),\n"
            "                   'budget': report.budget_curves(part, title=title)}\n"
            "    else:\n"
            "        display(Markdown(report.findings(part)))\n"
            "        figures = {'rare': report.round_curves(part, title=title)}\n"
            "    if len(rows):  # one strategy alone has nothing to be paired with\n"
            "        figures['paired'] = report.paired_figure(rows, metric=metric, title=title)\n"
            "    figures['per_class'] = report.per_class_curves(report.per_class_frame(mine, names),\n"
            "                                                   title=f'{title}: per-class accuracy')\n"
            "    for kind, fig in figures.items():\n"
            "        saved += report.save_figure(fig, figures_dir, f'{name}_{kind}')\n"
            "        plt.show()\n"
            "print(f'{len(saved)} files saved in {figures_dir}')"),
        new_markdown_cell("## Targeted active learning (CLINICAL), final round\nmean ± sd over seeds; `rare picked`: "
                          "rare images labeled over all rounds."),
        new_code_cell("targeted = frame[~frame['experiment'].isin(of_paper('refinement'))]\n"
                      "report.final_table(targeted) if len(targeted) else 'no CLINICAL records'"),
        new_markdown_cell(
            "## Paired differences\nAll strategies of one seed share the split and the initial model, so each "
            "strategy is compared with random and with its experiment's best baseline (by that metric's mean) seed "
            "by seed: mean difference of the final round and its 95% Student-t confidence interval over seeds "
            "(`*`: the interval excludes 0). `rare_picked_total`: rare images labeled over all rounds. Label "
            "refinement likewise for every sampler. All rows, every metric: `<tables_dir>/paired.csv`."),
        new_code_cell("report.paired_view(paired)"),
        new_markdown_cell("### Phase 1: Co-teaching + VOG against Co-teaching, clean recall per class"),
        new_code_cell("recall_rows = paired[paired['metric'].str.startswith('clean recall')]\n"
                      "(recall_rows.set_index(['experiment', 'metric', 'strategy', 'reference']).round(3)\n"
                      " if len(recall_rows) else 'no label-refinement records')"),
        new_markdown_cell(
            "## When the model is blind to the rare classes\nSeeds whose initial model predicts no test image "
            "rare (rare-class accuracy 0), and how often the model that picks a round's images predicts no pool "
            "image rare: then the authors' gradient embeddings point every pool image away from the rare queries."),
        new_code_cell("report.collapse_table(targeted) if len(targeted) else 'no CLINICAL records'"),
        new_markdown_cell("What each strategy picked in rounds whose picking model was blind (predicted no pool image "
                          "rare) and in the others: rare images per round, mean over those rounds."),
        new_code_cell("report.blind_rounds_table(targeted) if len(targeted) else 'no CLINICAL records'"),
        new_markdown_cell("## Active label refinement, final round\nmean ± sd over seeds; `corrected`: wrong labels "
                          "fixed by the expert; `remaining noise`: wrong labels left in the training set."),
        new_code_cell("noisy = frame[frame['experiment'].isin(of_paper('refinement'))]\n"
                      "report.refinement_table(noisy) if len(noisy) else 'no label-refinement records'"),
    ]
    return _notebook(cells)


def labeling_notebook() -> nbformat.NotebookNode:
    """Targeted labeling of your own images: one round per run of the notebook."""
    cell = _parameters_cell("label_my_images", {"folder": "# Your images", "pretrain": "# the recommended training "
                                               "recipe (recommended.yaml, chosen by benchmarks/sweep.py):",
                                               "annotator": "# who labels"})
    cells = [
        new_markdown_cell(
            "# Targeted labeling of your own images\n\nA folder of unlabeled scans, a few labeled ones (a CSV of "
            "`path,label`, class names) and an expert with an hour. Each run of this notebook is one round: it "
            "trains a model on everything labeled so far, picks `budget` images that most look like the rare classes "
            "(an SMI function; or a baseline), and shows them in a grid to label. Every click is written to disk at "
            "once (an append-only log and the labels CSV), so closing the browser or restarting the kernel loses "
            "nothing: run the notebook again and it shows the picks still to label, or starts the next round when "
            "there are none.\n\nThe defaults label a demo folder written from PneumoniaMNIST (`python -m "
            "clinical_utils.labeling.demo demo/pneumonia`); for your own images set `folder`, `labels` and `rare_classes`. "
            "The outputs saved here come from a run on the demo folder in which its answer key stood in for the "
            "expert (`answer_key=\"../demo/pneumonia_answers.csv\"`)."),
        cell,
        new_code_cell(
            "import os\nfrom pathlib import Path\n\nimport pandas as pd\n\n"
            "from clinical_utils.experiments import configure\n"
            "from clinical_utils.labeling import LabelingProject, LabelingWidget, demo, validation_table\n\n"
            f"settings = configure('label_my_images', {_arguments('label_my_images')})  # every value checked\n"
            "if folder == \"../demo/pneumonia\" and not Path(folder).exists():\n"
            "    demo.write_pneumonia_folder(folder)\n"
            "project = LabelingProject(folder, labels, state_dir, size=size, annotator=annotator)\n"
            "print(f\"{len(project.data.pool_paths)} unlabeled images; labeled so far, per class and split:\")\n"
            "project.counts()"),
        new_markdown_cell("## This round\nTrained on everything labeled so far. While picks are left unlabeled, "
                          "this cell shows the same round again instead of starting a new one."),
        _ignored_output(
            "if project.pending():\n"
            "    current = project.current_round()\n"
            "    print(f\"round {current['round']}: {len(project.pending())} of {len(current['picks'])} picks \"\n"
            "          \"still to label\")\n"
            "else:\n"
            "    current = project.run_round(strategy, budget, rare_classes, model=model, train_config=settings.train,\n"
            "                                embedding=embedding, pretrain=settings.pretrain)\n"
            "    print(f\"round {current['round']}: {strategy} picked {len(current['picks'])} images in \"\n"
            "          f\"{current['seconds']:.0f} s (model {current['model_version']})\")\n"
            "if current.get('warning'):  # a cold start, or a model that calls no unlabeled image rare\n"
            "    print('warning:', current['warning'])"),
        new_markdown_cell(
            "## Label them\nClick the grid once, then: **1**, **2**, ... the classes in the order of the buttons, "
            "**u** unsure (never asked again), **s** skip (may come back), **Backspace** undo, arrows to move. Click "
            "an image to see it large. Each label is on disk before the grid moves on."),
        _ignored_output("widget = LabelingWidget(project)\nwidget"),
        _ignored_output(
            "if answer_key is not None:  # the demo's stand-in for the expert: the calls the buttons make\n"
            "    answers = dict(pd.read_csv(answer_key).values)\n"
            "    for path in project.pending():\n"
            "        widget.select([item['path'] for item in widget.items].index(path))\n"
            "        widget.label(answers[path])\n"
            "print(widget.progress)"),
        new_code_cell("picture = widget.picture()  # the round as labeled: the grid above is live only while the "
                      "kernel runs"),
        new_markdown_cell("## What changed\nRun these cells once the picks are labeled."),
        new_code_cell(
            "given = project.labels()\n"
            "found = [p for p in current['picks'] if given.get(p) in rare_classes]\n"
            "print(f\"rare images found this round: {len(found)} of {len(current['picks'])} picks\")\n"
            "project.counts()"),
        new_code_cell("pd.DataFrame({'your label': [given.get(p, project.status(p)) for p in current['picks']],\n"
                      "              \"the model's guess\": [f\"{c} {q:.0%}\" for c, q in (current['predictions'][p] "
                      "for p in current['picks'])]},\n"
                      "             index=pd.Index(current['picks'], name='pick'))"),
        new_markdown_cell("Validation accuracy per class: the model that picked this round's images, and one "
                          "retrained on everything labeled now."),
        new_code_cell("if project.missing_classes():  # after a cold start: still no labeled image of a class\n"
                      "    print(f'no model yet: label an image of {project.missing_classes()} to train one')\n"
                      "else:\n"
                      "    retrained, after = project.fit(model, settings.train, pretrain=settings.pretrain)\n"
                      "    before = {} if current['validation'] is None else {'before this round': "
                      "current['validation']}\n"
                      "    display(validation_table(project.class_names, {**before, 'after': after}).round(3))"),
        new_markdown_cell(
            "## Hand the picks to other tools\nThe labels CSV (the log's export, rewritten after every click) "
            "loads with `clinical_utils.data.load_folder`; the round's picks also go out as a file list and as "
            "Label Studio tasks, and labels made elsewhere come back with `project.import_labels(csv)`."),
        new_code_cell(
            "name = project.state_dir / f\"round{current['round']}\"\n"
            "for path in (project.labels_csv, project.export_file_list(f\"{name}_picks.txt\"),\n"
            "             project.export_label_studio(f\"{name}_label_studio.json\")):\n"
            "    print(os.path.relpath(path))"),
    ]
    return _notebook(cells)


def _ignored_output(source: str) -> nbformat.NotebookNode:
    """A code cell whose output (progress bars, timings) nbval does not compare: a cell tag, not a comment."""
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["nbval-ignore-output"]
    return cell


def _notebook(cells) -> nbformat.NotebookNode:
    for i, cell in enumerate(cells):  # fixed ids: regenerating an unchanged notebook changes nothing
        cell.id = f"cell-{i:02d}"
    nb = new_notebook(cells=cells)
    # the kernel `make setup` registers: outside the project's Lab the notebooks still open on its Python
    nb.metadata["kernelspec"] = {"name": "clinical-utils", "display_name": "Python (clinical-utils)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    for name in of_paper("clinical"):
        nbformat.write(experiment_notebook(name), HERE / f"{name}.ipynb")
    for name in of_paper("refinement"):
        nbformat.write(noisy_notebook(name), HERE / f"{name}.ipynb")
    nbformat.write(summary_notebook(), HERE / "summary.ipynb")
    # its committed outputs come from a run on the demo folder: python -m clinical_utils.labeling.demo demo/pneumonia, then
    # papermill notebooks/label_my_images.ipynb notebooks/label_my_images.ipynb --cwd notebooks
    #     -p answer_key ../demo/pneumonia_answers.csv
    nbformat.write(labeling_notebook(), HERE / "label_my_images.ipynb")


if __name__ == "__main__":
    main()
