"""The batch: run every experiment notebook with papermill, then the summary, then say what happened.

    python -m clinical_utils.reproduce [--profile quick] [--only NAME ...] [--set NAME=VALUE ...] [--force]

Run from the repository root. Executed notebooks go to results/executed/ (other profiles: results/<profile>/
executed/), each written under a temporary name and renamed when it finished, so a stopped batch leaves no
half-written notebook; a failed one is kept as <name>.failed.ipynb. A notebook whose executed copy finished with
the same parameters and the same cells is skipped; inside a notebook, finished run records are read back, so an
interrupted batch resumes at the run (and round) it stopped in. With the quick profile and no --set, each
executed notebook is also copied over notebooks/<name>.ipynb: the committed notebooks show a real quick run.
A notebook that fails does not stop the batch; the exit status is 1 if any failed.
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill

from .data import DataError, ensure_file
from .experiments import EXPERIMENTS, PROFILES, ConfigError, configure
from .noisy_experiments import NOISY_EXPERIMENTS, configure_noisy

NOTEBOOKS = (*EXPERIMENTS, *NOISY_EXPERIMENTS)

SUMMARY = "summary"


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


def _parameters(name: str, profile: str, overrides: dict) -> dict:
    """What papermill injects: only what differs from the notebook's own defaults (profile quick). Other profiles
    keep their records in results/<profile>/ and their figures in figures/<profile>/."""
    if name == SUMMARY:
        return {} if profile == "quick" else {"results_dir": f"../results/{profile}",
                                              "figures_dir": f"../figures/{profile}"}
    params = {} if profile == "quick" else {"profile": profile, "results_dir": f"../results/{profile}"}
    return {**params, **overrides}


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
    partial = executed.with_name(executed.stem + ".partial.ipynb")
    failed = executed.with_name(executed.stem + ".failed.ipynb")
    try:
        papermill.execute_notebook(source, partial, parameters=params, kernel_name="python3", cwd=str(notebooks),
                                   progress_bar=sys.stderr.isatty(), log_output=False)
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
    notebooks = root / "notebooks"
    executed_dir = root / "results" / ("executed" if profile == "quick" else f"{profile}/executed")
    publish = profile == "quick" and not overrides
    # Check every notebook's parameters before running anything: a typo should not cost a half-hour batch.
    configs = {name: (configure_noisy if name in NOISY_EXPERIMENTS else configure)(
        name, **_parameters(name, profile, overrides)) for name in names}
    outcomes = []
    for i, name in enumerate(names + [SUMMARY], 1):
        params = _parameters(name, profile, overrides)
        source, executed = notebooks / f"{name}.ipynb", executed_dir / f"{name}.ipynb"
        print(f"[{i}/{len(names) + 1}] {name}", flush=True)
        if name == SUMMARY:
            results = (notebooks / params.get("results_dir", "../results")).resolve()
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
        start = time.perf_counter()
        try:
            _execute(source, executed, params, notebooks)
        except Exception as err:  # one notebook failing must not stop the batch
            outcomes.append(Outcome(name, "FAILED", f"{_error_line(err)}; see {executed.with_suffix('')}"
                                    f".failed.ipynb", time.perf_counter() - start))
            print(f"    FAILED: {outcomes[-1].detail}", flush=True)
            continue
        if publish:
            shutil.copyfile(executed, source)
        outcomes.append(Outcome(name, "ran", str(executed), time.perf_counter() - start))
        print(f"    ran in {outcomes[-1].seconds:.0f} s", flush=True)
    return outcomes


def report(outcomes: list[Outcome], profile: str) -> str:
    width = max(len(o.name) for o in outcomes)
    lines = [f"\nprofile {profile}:"]
    for o in outcomes:
        took = f" ({o.seconds / 60:.1f} min)" if o.status == "ran" else ""
        lines.append(f"  {o.name:<{width}}  {o.status}{took}: {o.detail}")
    figures = "figures/" if profile == "quick" else f"figures/{profile}/"
    if any(o.name == SUMMARY and o.status == "ran" for o in outcomes):
        lines.append(f"figures: {figures} (PNG and SVG); final table: the summary notebook's last cells")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinical_utils.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", help=f"one of {list(PROFILES)} (default: quick)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"notebooks to run, of {list(NOTEBOOKS)}")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="override a notebook parameter, e.g. --set device=cuda seeds=[0,1]")
    parser.add_argument("--force", action="store_true", help="re-run notebooks whose executed copy is current")
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
    if os.environ.get("MEDMNIST_ROOT"):  # the kernels run in notebooks/: a relative root must not move with them
        os.environ["MEDMNIST_ROOT"] = str(Path(os.environ["MEDMNIST_ROOT"]).expanduser().resolve())
    try:
        outcomes = run_batch(names, args.profile, _parse_set(args.overrides), args.force, root)
    except ConfigError as err:
        parser.error(str(err))
    print(report(outcomes, args.profile))
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
