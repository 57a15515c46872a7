"""The batch: run every experiment notebook with papermill, then the summary, then say what happened.

    python -m clinical_utils.reproduce [--profile quick] [--only NAME ...] [--set NAME=VALUE ...] [--force]
                                       [--threads N]
    python -m clinical_utils.reproduce --profile quick --promote    # make the last run the reference

Run from the repository root. Two places hold records: results/<profile>/ is the committed *reference*, and a
batch always computes afresh into results/runs/<profile>/ (not committed): records, executed notebooks
(executed/) and figures (figures/). Each executed notebook is written under a temporary name and renamed when
it finished, so a stopped batch leaves no half-written notebook; a failed one is kept as <name>.failed.ipynb. A
notebook whose executed copy finished with the same parameters and the same cells is skipped; inside a
notebook, finished run records are read back, so an interrupted batch resumes at the run (and round) it stopped
in. `--promote` copies a finished run over the reference (records, executed notebooks, tables; figures into
figures/ for quick and figures/<profile>/ otherwise; for quick also the executed notebooks over notebooks/), for
a maintainer to commit. A notebook that fails does not stop the batch; the exit status is 1 if any failed, if a
notebook named with --only was skipped, or if nothing ran.
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import filelock
import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from .data import DataError, ensure_file
from .records import read_json, write_atomic, write_json_atomic
from .experiments import EXPERIMENTS, PROFILES, configure, profile_values
from .params import ConfigError, check_names
from .noisy_experiments import NOISY_EXPERIMENTS, NOISY_PROFILES, configure_noisy, noisy_profile_values

NOTEBOOKS = (*EXPERIMENTS, *NOISY_EXPERIMENTS)

SUMMARY = "summary"


class QuietKernelManager(AsyncKernelManager):
    """Kernels over IPC (local sockets): ipykernel warns on the terminal about every TCP kernel it starts."""

    @default("transport")
    def _default_transport(self):
        return "ipc"


def runs_dir(profile: str) -> str:
    """Where a batch computes, relative to the repository root."""
    return f"results/runs/{profile}"


@dataclass
class Outcome:
    name: str
    status: str  # ran | done before | skipped | FAILED
    detail: str = ""
    seconds: float = 0.0


def _parse_set(items: list[str]) -> dict:
    """NAME=VALUE pairs; VALUE is a Python literal (3, [0, 1], None, 'cuda') or else a plain string."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--set {item!r} must look like NAME=VALUE, e.g. --set seeds=[0] or --set device=cuda")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def notebook_parameters(name: str, profile: str, overrides: dict) -> dict:
    """What papermill injects: every value of `profile` that differs from the notebook's own parameters cell
    (quick's values), with its run folder results/runs/<profile> (notebooks run in notebooks/, hence the ../)."""
    here = f"../{runs_dir(profile)}"
    if name == SUMMARY:  # its defaults read the reference
        return {"results_dir": here, "figures_dir": f"{here}/figures", "tables_dir": f"{here}/summary"}
    values = noisy_profile_values if name in NOISY_EXPERIMENTS else profile_values
    quick, chosen = values(name, "quick"), values(name, profile)
    changed = {k: v for k, v in chosen.items() if v != quick[k]}
    return {**changed, **({} if profile == "quick" else {"results_dir": here}), **overrides}


def check_overrides(names: list[str], overrides: dict, notebooks: Path) -> None:
    """Every --set name must be a parameter of every notebook it goes to (papermill would only log a warning)."""
    for name in names:
        taken = papermill.inspect_notebook(str(notebooks / f"{name}.ipynb"))
        check_names(overrides, list(taken), f"notebook {name}")


def _code_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get(
        "tags", [])]


def _done_before(source: Path, executed: Path, params: dict) -> bool:
    """The executed copy finished, with these parameters, from the notebook's current cells."""
    if not executed.exists():
        return False
    done = nbformat.read(executed, as_version=4)
    meta = done.metadata.get("papermill", {})
    return (bool(meta.get("end_time")) and not meta.get("exception") and meta.get("parameters", {}) == params
            and _code_cells(done) == _code_cells(nbformat.read(source, as_version=4)))


def _execute(source: Path, executed: Path, params: dict, notebooks: Path) -> None:
    """papermill into a temporary name beside `executed`, renamed on success; on failure kept as .failed.ipynb."""
    executed.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=executed.parent, prefix=f".{executed.stem}.", suffix=".partial.ipynb")
    os.close(fd)
    partial = Path(partial)  # a unique name: two writers never share it
    failed = executed.with_name(executed.stem + ".failed.ipynb")
    try:
        papermill.execute_notebook(source, partial, parameters=params, kernel_name="python3", cwd=str(notebooks),
                                   progress_bar=sys.stderr.isatty(), log_output=False,
                                   kernel_manager_class=QuietKernelManager)
    except BaseException:
        if partial.exists():
            os.replace(partial, failed)
        raise
    failed.unlink(missing_ok=True)
    os.replace(partial, executed)


def _error_line(err: BaseException) -> str:
    if isinstance(err, papermill.PapermillExecutionError):
        return f"{err.ename}: {str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ''}"
    return f"{type(err).__name__}: {err}"


def run_batch(names: list[str], profile: str, overrides: dict, force: bool, root: Path) -> list[Outcome]:
    """Run the notebooks `names`, then the summary, into results/runs/<profile>; one batch per folder at a time
    (a second one stops at once, naming the folder and the process that holds it)."""
    notebooks = root / "notebooks"
    run = root / runs_dir(profile)
    # Check every notebook's parameters before running anything: a typo should not cost a half-hour batch.
    check_overrides(names, overrides, notebooks)
    configs = {name: (configure_noisy if name in NOISY_EXPERIMENTS else configure)(
        name, **notebook_parameters(name, profile, overrides)) for name in names}
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
        return _run_locked(names, profile, overrides, force, notebooks, run / "executed", configs)
    finally:
        lock.release()


def _run_locked(names, profile, overrides, force, notebooks, executed_dir, configs) -> list[Outcome]:
    outcomes = []
    for i, name in enumerate(names + [SUMMARY], 1):
        params = notebook_parameters(name, profile, overrides)
        source, executed = notebooks / f"{name}.ipynb", executed_dir / f"{name}.ipynb"
        print(f"[{i}/{len(names) + 1}] {name}", flush=True)
        if name == SUMMARY:
            results = (notebooks / params["results_dir"]).resolve()
            if not any(results.glob("*/*/seed*.json")):
                outcomes.append(Outcome(name, "skipped", f"no run records under {results}"))
                continue
        else:
            config = configs[name]
            try:
                data_root = None if config.data_root is None else notebooks / config.data_root
                ensure_file(config.dataset, root=data_root)
            except DataError as err:
                outcomes.append(Outcome(name, "skipped", str(err)))
                print(f"    skipped: {err}", flush=True)
                continue
            if not force and _done_before(source, executed, params):
                outcomes.append(Outcome(name, "done before", f"{executed} (--force re-runs it)"))
                continue
            if force and config.results_dir is not None:  # computed afresh: its old records would be read back
                shutil.rmtree(notebooks / config.results_dir / name, ignore_errors=True)
        start = time.perf_counter()
        try:
            _execute(source, executed, params, notebooks)
        except Exception as err:  # one notebook failing must not stop the batch
            outcomes.append(Outcome(name, "FAILED", f"{_error_line(err)}; see {executed.with_suffix('')}"
                                    f".failed.ipynb", time.perf_counter() - start))
            print(f"    FAILED: {outcomes[-1].detail}", flush=True)
            continue
        outcomes.append(Outcome(name, "ran", str(executed), time.perf_counter() - start))
        print(f"    ran in {outcomes[-1].seconds:.0f} s", flush=True)
    return outcomes


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
TIMINGS = ("train_seconds", "select_seconds", "seconds")  # differ on every run: not compared
RUN_FACTS = ("versions", "git_commit", "device", "threads")  # how, not what: reported, not compared


def _comparable(record: dict):
    strip = lambda d: {k: v for k, v in d.items() if k not in TIMINGS} if isinstance(d, dict) else d
    return {k: [strip(r) for r in v] if k == "rounds" else strip(v) for k, v in record.items()
            if k not in RUN_FACTS and k not in TIMINGS and k != "history"}


def _largest_differences(a: dict, b: dict) -> dict:
    """Per numeric round metric, the largest absolute difference between two records' rounds."""
    out = {}
    for ra, rb in zip(a.get("rounds", []), b.get("rounds", [])):
        for key, va in ra.items():
            vb = rb.get(key)
            if key in TIMINGS or isinstance(va, bool) or not isinstance(va, (int, float)) or not isinstance(
                    vb, (int, float)):
                continue
            if va != vb and not (va != va and vb != vb):  # NaN equals NaN here
                out[key] = max(out.get(key, 0.0), abs(va - vb))
    return out


def compare_with_reference(root: Path, profile: str) -> dict:
    """How the run in results/runs/<profile> compares with the reference results/<profile>, per experiment:
    records in both, how many are identical (timings, versions, commit and thread count aside), and for the others
    the largest difference of each metric. Written to results/runs/<profile>/reproduction.json."""
    run, reference = root / runs_dir(profile), root / "results" / profile
    report_ = {"profile": profile, "reference": str(reference.relative_to(root)), "run": runs_dir(profile),
               "experiments": {}}
    for path in sorted(run.glob("*/**/seed*.json")):
        relative = path.relative_to(run)
        entry = report_["experiments"].setdefault(relative.parts[0], {
            "records": 0, "identical": 0, "different": [], "not in reference": [], "largest differences": {}})
        entry["records"] += 1
        ours, theirs = read_json(path), (read_json(reference / relative) if (reference / relative).exists()
                                         else None)
        if theirs is None:
            entry["not in reference"].append(str(relative))
        elif _comparable(ours) == _comparable(theirs):
            entry["identical"] += 1
        else:
            entry["different"].append(str(relative))
            for key, value in _largest_differences(ours, theirs).items():
                entry["largest differences"][key] = max(entry["largest differences"].get(key, 0.0), value)
    write_json_atomic(run / "reproduction.json", report_)
    return report_


def reproduction_lines(report_: dict) -> list[str]:
    lines = [f"against the reference {report_['reference']}/:"]
    for name, e in report_["experiments"].items():
        line = f"  {name}: {e['identical']} of {e['records']} records identical"
        if e["not in reference"]:
            line += f", {len(e['not in reference'])} not in the reference"
        if e["largest differences"]:
            biggest = sorted(e["largest differences"].items(), key=lambda kv: -kv[1])[:4]
            line += "; largest differences: " + ", ".join(f"{k} {v:.3g}" for k, v in biggest)
        lines.append(line)
    lines.append(f"  details: {report_['run']}/reproduction.json")
    return lines


def promote(root: Path, profile: str) -> list[Path]:
    """Copy the run in results/runs/<profile> over the reference results/<profile> (records, executed notebooks,
    summary tables) and its figures into figures/ (quick) or figures/<profile>/; for quick the executed experiment
    notebooks also replace notebooks/<name>.ipynb."""
    run, reference = root / runs_dir(profile), root / "results" / profile
    records = sorted(run.glob("*/**/seed*.json"))
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
        _execute(summary, summary, {}, root / "notebooks")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinical_utils.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", help=f"one of {list(PROFILES)} (default: quick)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"notebooks to run, of {list(NOTEBOOKS)}")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="override a notebook parameter, e.g. --set device=cuda seeds=[0,1]")
    parser.add_argument("--force", action="store_true",
                        help="re-run the notebooks from scratch: their executed copies and run records are replaced")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="CPU threads per kernel (default 1: records then repeat bit for bit on any machine with "
                             "the same torch build and the same precision, see train.precision in a record; the "
                             "small CNN runs as fast on 1 thread as on 2)")
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
    if args.profile not in NOISY_PROFILES:  # paper_cpu: the CLINICAL notebooks only
        asked = sorted(set(args.only or []) & set(NOISY_EXPERIMENTS))
        if asked:
            parser.error(f"profile {args.profile!r} has no label-refinement settings: {asked} run under "
                         f"{list(NOISY_PROFILES)}")
        names = [n for n in names if n not in NOISY_EXPERIMENTS]
    if args.promote:
        try:
            print(f"copied {len(promote(root, args.profile))} files into results/{args.profile}/")
        except ConfigError as err:
            parser.error(str(err))
        return 0
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: give a whole number >= 1")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read by torch when a kernel imports it
        os.environ[name] = str(args.threads)
    os.environ["TQDM_DISABLE"] = "1"  # the kernels inherit it: saved notebooks carry no progress bars
    if os.environ.get("MEDMNIST_ROOT"):  # the kernels run in notebooks/: a relative root must not move with them
        os.environ["MEDMNIST_ROOT"] = str(Path(os.environ["MEDMNIST_ROOT"]).expanduser().resolve())
    try:
        outcomes = run_batch(names, args.profile, _parse_set(args.overrides), args.force, root)
    except ConfigError as err:
        parser.error(str(err))
    print(report(outcomes, args.profile))
    if (root / "results" / args.profile).exists():
        print("\n".join(reproduction_lines(compare_with_reference(root, args.profile))))
    failed = any(o.status == "FAILED" for o in outcomes)
    asked_but_skipped = args.only is not None and any(o.status == "skipped" and o.name in args.only
                                                      for o in outcomes)
    nothing_ran = not any(o.status in ("ran", "done before") for o in outcomes if o.name != SUMMARY)
    return 1 if failed or asked_but_skipped or nothing_ran else 0


if __name__ == "__main__":
    sys.exit(main())
