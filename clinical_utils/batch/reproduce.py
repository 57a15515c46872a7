"""The batch: run every experiment notebook with papermill, then the summary, then say what happened.

    python -m clinical_utils.batch [--profile quick] [--only NAME ...] [--set NAME=VALUE ...] [--force]
                                   [--threads N] [--workers N | --scheduler ADDRESS]
    python -m clinical_utils.batch --profile quick --promote    # make the last run the reference

Run from the repository root. Two places hold records: results/<profile>/ is the committed *reference*, and a
batch always computes afresh into results/runs/<profile>/ (not committed): records, executed notebooks
(executed/) and figures (figures/). Each executed notebook is written under a temporary name and renamed when
it finished, so a stopped batch leaves no half-written notebook; a failed one is kept as <name>.failed.ipynb. A
notebook whose executed copy finished with the same parameters and the same cells is skipped; inside a
notebook, finished run records are read back, so an interrupted batch resumes at the run (and round) it stopped
in. With --workers or --scheduler the notebooks run as a grid of per-seed shards on Dask (see `grid`): same
records, shared out. After the batch its records are compared with the reference (`reference`). `--promote`
copies a finished run over the reference (records, executed notebooks, tables; figures into figures/ for quick
and figures/<profile>/ otherwise; for quick also the executed notebooks over notebooks/), for a maintainer to
commit. A notebook that fails does not stop the batch; the exit status is 1 if any failed, if a
notebook named with --only was skipped, or if nothing ran.
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import time
from pathlib import Path

import filelock
import nbformat
import papermill
import torch

from ..data import DataError, ensure_file, load_medmnist
from ..experiments import EXPERIMENTS, PAPERS, PROFILES, configure, profile_values, seed_records
from ..params import ConfigError, check_names
from ..records import RecordError, record_paths, remove_stale_temporaries, write_atomic, write_json_atomic
from ..training.train import resolve_device
from .environment import BATCH_ENVIRONMENT
from .grid import (SAME_MEANING, Outcome, Shard, check_cluster, done_before, error_line, finished, run_grid,
                   run_notebook, start_client)
from .reference import compare_with_reference, reproduction_lines, runs_dir

NOTEBOOKS = tuple(EXPERIMENTS)

SUMMARY = "summary"

def _parse_set(items: list[str]) -> dict:
    """NAME=VALUE pairs, from one --set or several; VALUE is a Python literal (3, [0, 1], None, 'cuda') or else a
    plain string. A name given twice must have one value."""
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--set {item!r} must look like NAME=VALUE, e.g. --set seeds=[0] or --set device=cuda")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if name in out and out[name] != value:
            raise ConfigError(f"--set {name} is given twice, as {out[name]!r} and {value!r}; give it once")
        out[name] = value
    return out


def notebook_parameters(name: str, profile: str, overrides: dict) -> dict:
    """What papermill injects: every value of `profile` that differs from the notebook's own parameters cell
    (quick's values), with its run folder results/runs/<profile> (notebooks run in notebooks/, hence the ../)."""
    here = f"../{runs_dir(profile)}"
    if name == SUMMARY:  # its defaults read the reference; it reads the records where the notebooks wrote them
        return {"results_dir": overrides.get("results_dir", here), "figures_dir": f"{here}/figures",
                "tables_dir": f"{here}/summary"}
    quick, chosen = profile_values(name, "quick"), profile_values(name, profile)
    changed = {k: v for k, v in chosen.items() if v != quick[k]}
    return {**changed, **({} if profile == "quick" else {"results_dir": here}), **overrides}


def check_overrides(names: list[str], overrides: dict, notebooks: Path) -> None:
    """Every --set name must be a parameter of every notebook it goes to (papermill would only log a warning)."""
    for name in names:
        taken = papermill.inspect_notebook(str(notebooks / f"{name}.ipynb"))
        check_names(overrides, list(taken), f"notebook {name}")


def run_batch(names: list[str], profile: str, overrides: dict, force: bool, root: Path, workers: int | None = None,
              scheduler: str | None = None, threads: int | None = None) -> list[Outcome]:
    """Run the notebooks `names`, then the summary, into results/runs/<profile>; one batch per folder at a time
    (a second one stops at once, naming the folder and the process that holds it). With `workers` (a new
    LocalCluster) or `scheduler` (a running Dask cluster) the notebooks run as a grid of per-seed shards
    (`grid`); threads: each kernel's CPU threads in the grid (default: its share of its host's cores)."""
    notebooks = root / "notebooks"
    run = root / runs_dir(profile)
    # Check every notebook's parameters before running anything: a typo should not cost a half-hour batch.
    check_overrides(names, overrides, notebooks)
    configs = {name: configure(name, **notebook_parameters(name, profile, overrides)) for name in names}
    grid = workers is not None or scheduler is not None
    if grid:
        no_folder = [name for name, config in configs.items() if config.results_dir is None]
        if no_folder:
            raise ConfigError(f"{no_folder} keep no records (results_dir=None), and a grid's shards meet only in "
                              "their records: give a results_dir or run without --workers/--scheduler")
    run.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(run / ".batch.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        holder = (run / ".batch.pid").read_text().strip() if (run / ".batch.pid").exists() else "unknown"
        raise ConfigError(f"another batch is running on {run} (process {holder}); wait for it to finish, or run "
                          "another profile") from None
    try:
        write_atomic(run / ".batch.pid", lambda tmp: tmp.write_text(f"{os.getpid()}\n"))
        for stale in (run / "executed").glob("**/.*.partial.ipynb"):  # of a killed batch: no writer holds them now
            stale.unlink()
        for config in configs.values():  # a killed writer's temporary files beside the records
            if config.results_dir is not None and (notebooks / config.results_dir).is_dir():
                remove_stale_temporaries(notebooks / config.results_dir)
        ready, outcomes = _prepare(names, profile, overrides, force, notebooks, run / "executed", configs)
        if grid:
            outcomes += _run_grid(ready, profile, overrides, notebooks, run, configs, workers, scheduler, threads)
        else:
            for name in ready:
                outcomes.append(_run_one(name, notebook_parameters(name, profile, overrides), notebooks, run))
        return outcomes + [_summary(profile, overrides, notebooks, run)]
    finally:
        lock.release()


def _prepare(names, profile, overrides, force, notebooks, executed_dir, configs) -> tuple[list[str], list[Outcome]]:
    """The notebooks to run, and the outcomes of those that need not (no data: skipped; finished: done before).
    Done means the executed notebook finished with these parameters and cells and every record of every seed is
    there and finished; a missing record is computed again, a damaged or stale one stops the batch, naming it. The
    pools of every experiment that will run are checked against rounds x budget here too, before any kernel
    starts."""
    ready, outcomes = [], []
    for name in names:
        config, params = configs[name], notebook_parameters(name, profile, overrides)
        root = None if config.data_root is None else notebooks / config.data_root
        try:
            ensure_file(config.dataset, root=root)
        except DataError as err:
            outcomes.append(Outcome(name, "skipped", str(err)))
            print(f"{name} skipped: {err}", flush=True)
            continue
        try:
            recorded = force or config.results_dir is None or all([finished(  # a list: every seed is read
                _seed_records(config, seed, notebooks),
                {**{k: getattr(config, k) for k in SAME_MEANING if hasattr(config, k)}, "seed": seed})
                for seed in config.seeds])
        except RecordError as err:
            raise ConfigError(str(err)) from None
        executed = executed_dir / f"{name}.ipynb"
        if not force and recorded and done_before(notebooks / f"{name}.ipynb", executed, params):
            outcomes.append(Outcome(name, "done before", f"{executed} (--force re-runs it)"))
            continue
        check = PAPERS[EXPERIMENTS[name].paper].check_before_run
        if check is not None:  # it will run: e.g. its pools must supply every round
            check(load_medmnist(config.dataset, root=root, verify=config.verify_data), config)
        if force and config.results_dir is not None:  # computed afresh: its old records would be read back
            shutil.rmtree(notebooks / config.results_dir / name, ignore_errors=True)
        ready.append(name)
    return ready, outcomes


def _run_one(name: str, params: dict, notebooks: Path, run: Path) -> Outcome:
    """Execute one full notebook into run/executed/; a failure is an outcome, not an exception."""
    executed = run / "executed" / f"{name}.ipynb"
    print(f"{name} ...", flush=True)
    start = time.perf_counter()
    try:
        run_notebook(notebooks / f"{name}.ipynb", executed, params, notebooks)
    except Exception as err:  # one notebook failing must not stop the batch
        outcome = Outcome(name, "FAILED", f"{error_line(err)}; see {executed.with_suffix('')}.failed.ipynb",
                          time.perf_counter() - start)
        print(f"    FAILED: {outcome.detail}", flush=True)
        return outcome
    print(f"    ran in {time.perf_counter() - start:.0f} s", flush=True)
    return Outcome(name, "ran", str(executed), time.perf_counter() - start)


def _summary(profile: str, overrides: dict, notebooks: Path, run: Path) -> Outcome:
    params = notebook_parameters(SUMMARY, profile, overrides)
    results = (notebooks / params["results_dir"]).resolve()
    if not record_paths(results):
        return Outcome(SUMMARY, "skipped", f"no run records under {results}")
    return _run_one(SUMMARY, params, notebooks, run)


def _seed_records(config, seed: int, notebooks: Path) -> list[Path]:
    """The records one seed of a configured notebook leaves finished."""
    return seed_records(os.path.normpath(notebooks / config.results_dir), config, seed)  # paths to show


def _run_grid(names, profile, overrides, notebooks, run, configs, workers, scheduler, threads) -> list[Outcome]:
    """The notebooks as per-seed shards on Dask; each notebook collected (run in full, reading its records back)
    once its shards are done. The shards' hosts, workers and times go to run/grid.json."""
    if not names:
        return []
    wants_gpu = lambda device: device.startswith("cuda") or (device == "auto" and resolve_device().type == "cuda")
    gpu = any(wants_gpu(configs[name].device) for name in names)
    shards = [Shard(name, seed, {**notebook_parameters(name, profile, overrides), "seeds": [seed]},
                    _seed_records(configs[name], seed, notebooks))
              for name in names for seed in configs[name].seeds]
    client = start_client(workers, scheduler, gpus=torch.cuda.device_count() if gpu else 0)
    outcomes, start = {}, time.perf_counter()
    # the kernels on the workers need what the batch set here (a remote worker has its own environment)
    env = {k: os.environ[k] for k in ("MEDMNIST_ROOT", "TQDM_DISABLE", *BATCH_ENVIRONMENT) if k in os.environ}
    try:
        try:
            count = check_cluster(client, gpu)
        except RuntimeError as err:
            raise ConfigError(str(err)) from None
        print(f"grid: {len(shards)} shards of {len(names)} notebooks on {count} Dask workers"
              f"{' (one GPU each)' if gpu else ''}", flush=True)

        def collect(name: str) -> None:  # every shard of `name` is done: the full notebook reads its records back
            outcomes[name] = _run_one(name, notebook_parameters(name, profile, overrides), notebooks, run)

        failed, rows = run_grid(client, shards, {n: notebooks / f"{n}.ipynb" for n in names},
                                run / "executed" / "shards", notebooks, threads, env, gpu, collect)
    finally:
        client.close()
        if scheduler is None and client.cluster is not None:
            client.cluster.close()
    for name, line in failed.items():
        outcomes[name] = Outcome(name, "FAILED", f"shard {line}; see {run}/executed/shards/")
    write_json_atomic(run / "grid.json", {"seconds": round(time.perf_counter() - start, 1), "shards": rows})
    for row in rows:
        where = f" on {row['worker']} ({row['threads']} threads)" if row["status"] == "ran" else ""
        took = f" in {row['seconds']:.0f} s" if "seconds" in row else ""
        print(f"  {row['shard']}: {row['status']}{where}{took}{': ' + row['detail'] if 'detail' in row else ''}")
    for name, outcome in outcomes.items():
        mine = [r for r in rows if r["notebook"] == name]
        outcome.detail += (f" ({len(mine)} shards, {sum(r['status'] == 'done before' for r in mine)} done before, "
                           f"{sum(r.get('seconds', 0.0) for r in mine) / 60:.1f} min of shard time)")
    return [outcomes[name] for name in names if name in outcomes]


def report(outcomes: list[Outcome], profile: str) -> str:
    width = max(len(o.name) for o in outcomes)
    lines = [f"\nprofile {profile}:"]
    for o in outcomes:
        took = f" ({o.seconds / 60:.1f} min)" if o.status == "ran" else ""
        lines.append(f"  {o.name:<{width}}  {o.status}{took}: {o.detail}")
    if any(o.name == SUMMARY and o.status == "ran" for o in outcomes):
        lines.append(f"records, executed notebooks and figures: {runs_dir(profile)}/; the reference: "
                     f"results/{profile}/ (--promote makes this run the reference)")
    return "\n".join(lines)


WHERE_DATA_IS = ("data_root", "verify_data")  # overrides that locate the data and change no result
def promote(root: Path, profile: str) -> list[Path]:
    """Copy the run in results/runs/<profile> over the reference results/<profile> (records, executed notebooks,
    summary tables) and its figures into figures/ (quick) or figures/<profile>/; for quick the executed experiment
    notebooks also replace notebooks/<name>.ipynb."""
    run, reference = root / runs_dir(profile), root / "results" / profile
    records = record_paths(run, phase1=None)
    if not records:
        raise ConfigError(f"no run records under {run}: run the batch for profile {profile} first")
    for path in sorted((run / "executed").glob("*.ipynb")):  # a reference is the profile as it is, no --set
        given = nbformat.read(path, as_version=4).metadata.get("papermill", {}).get("parameters", {})
        given = {k: v for k, v in given.items() if k not in WHERE_DATA_IS}
        if path.stem in NOTEBOOKS and given != notebook_parameters(path.stem, profile, {}):
            raise ConfigError(f"{path} ran with --set overrides ({given}); only a plain run of profile {profile} "
                              "can become its reference")
    for experiment in {p.relative_to(run).parts[0] for p in records}:  # no record of an older run survives
        shutil.rmtree(reference / experiment, ignore_errors=True)
    copied = []
    for path in [*records, *sorted((run / "executed").glob("*.ipynb")), *sorted((run / "summary").glob("*.csv"))]:
        if path.name.endswith((".partial.ipynb", ".failed.ipynb")):
            continue
        target = reference / path.relative_to(run)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    figures = root / "figures" / ("" if profile == "quick" else profile)
    figures.mkdir(parents=True, exist_ok=True)
    for path in sorted((run / "figures").glob("*")):
        shutil.copyfile(path, figures / path.name)
    if profile == "quick":
        for path in sorted((run / "executed").glob("*.ipynb")):
            if path.stem in NOTEBOOKS:
                shutil.copyfile(path, root / "notebooks" / path.name)
        summary = root / "notebooks" / f"{SUMMARY}.ipynb"  # re-run on its defaults: the new reference
        run_notebook(summary, summary, {}, root / "notebooks")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinical_utils.batch", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", help=f"one of {list(PROFILES)} (default: quick)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"notebooks to run, of {list(NOTEBOOKS)}")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="override notebook parameters, e.g. --set device=cuda seeds=[0,1] (or one --set each)")
    parser.add_argument("--force", action="store_true",
                        help="re-run the notebooks from scratch: their executed copies and run records are replaced")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads per kernel (default 1, and in a grid each kernel's share of its host's "
                             "cores: records then repeat bit for bit at the same thread count, torch build and "
                             "precision, see threads and train.precision in a record)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="run the notebooks as per-seed shards on a new Dask LocalCluster of N worker processes")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the shards on a running Dask cluster: tcp://HOST:PORT or a scheduler file")
    parser.add_argument("--promote", action="store_true",
                        help="copy the finished run of --profile over its committed reference, run nothing")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if not (root / "notebooks" / f"{SUMMARY}.ipynb").exists():
        parser.error(f"no notebooks/{SUMMARY}.ipynb under {root}: run this from the repository root")
    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {list(PROFILES)}")
    unknown = sorted(set(args.only or []) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; the notebooks are {list(NOTEBOOKS)}")
    names = [n for n in NOTEBOOKS if args.only is None or n in args.only]
    without = [n for n in names if args.profile not in PAPERS[EXPERIMENTS[n].paper].profiles]
    if args.only and without:  # paper_cpu: the CLINICAL notebooks only
        parser.error(f"profile {args.profile!r} has no settings for {without}: they run under "
                     f"{list(PAPERS[EXPERIMENTS[without[0]].paper].profiles)}")
    names = [n for n in names if n not in without]
    if args.promote:
        try:
            print(f"copied {len(promote(root, args.profile))} files into results/{args.profile}/")
        except ConfigError as err:
            parser.error(str(err))
        return 0
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: give a whole number >= 1")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers {args.workers}: give a whole number >= 1")
    if args.workers is not None and args.scheduler is not None:
        parser.error("give --workers (a new cluster on this machine) or --scheduler (a running one), not both")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read by torch when a kernel imports it
        os.environ[name] = str(args.threads or 1)
    os.environ["TQDM_DISABLE"] = "1"  # the kernels inherit it: saved notebooks carry no progress bars
    for name, value in BATCH_ENVIRONMENT.items():  # read by glibc and oneDNN when a kernel starts; a user's own wins
        os.environ.setdefault(name, value)
    if os.environ.get("MEDMNIST_ROOT"):  # the kernels run in notebooks/: a relative root must not move with them
        os.environ["MEDMNIST_ROOT"] = str(Path(os.environ["MEDMNIST_ROOT"]).expanduser().resolve())
    try:
        start = time.perf_counter()
        outcomes = run_batch(names, args.profile, _parse_set(args.overrides), args.force, root, args.workers,
                             args.scheduler, args.threads)
    except ConfigError as err:
        parser.error(str(err))
    print(report(outcomes, args.profile))
    print(f"the batch took {(time.perf_counter() - start) / 60:.1f} min")
    if (root / "results" / args.profile).exists():
        print("\n".join(reproduction_lines(compare_with_reference(root, args.profile))))
    failed = any(o.status == "FAILED" for o in outcomes)
    asked_but_skipped = args.only is not None and any(o.status == "skipped" and o.name in args.only
                                                      for o in outcomes)
    nothing_ran = not any(o.status in ("ran", "done before") for o in outcomes if o.name != SUMMARY)
    return 1 if failed or asked_but_skipped or nothing_ran else 0


if __name__ == "__main__":
    sys.exit(main())
