"""Running notebooks: one at a time with papermill, or the grid as Dask tasks.

The grid splits every notebook into shards, one per seed (papermill with `seeds=[k]`), and runs them as Dask
tasks on a LocalCluster or an existing cluster. Shards write their records into the one shared results folder;
when every shard of a notebook is done, a collect step executes the full notebook, which reads the records back
and draws its tables. Records are the unit of success and of idempotence: a shard is finished when every record
it writes exists and is finished, so a re-submitted grid skips finished shards and a killed worker's shard is run
again (it resumes at the round its records reached). A failed shard is reported and the rest go on.

Workers are meant to run one shard at a time (`--nthreads 1`): a shard sets its kernel's thread count
(OMP/MKL_NUM_THREADS, read when the kernel imports torch) to its share of its host's cores, and a GPU shard takes
the worker resource GPU=1, whose device the worker's CUDA_VISIBLE_DEVICES names (set when the worker starts:
resources are only counters). Kernels talk over IPC sockets with unique names in the temporary folder, so many
kernels starting at once never race for a port.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import papermill
from distributed.diagnostics.plugin import WorkerPlugin
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from ..records import RERUN, RecordError, check_parameters, make_readable, read_json, temporary
from .environment import usable_cores


class QuietKernelManager(AsyncKernelManager):
    """Kernels over IPC (local sockets): ipykernel warns on the terminal about every TCP kernel it starts. The
    socket names are unique per kernel (jupyter_client's default, ./kernel-ipc-N, races between processes)."""

    @default("transport")
    def _default_transport(self):
        return "ipc"

    @default("ip")
    def _default_ip(self):
        return str(Path(tempfile.gettempdir()) / f"clinical-utils-kernel-{uuid.uuid4().hex}")


@dataclass
class Outcome:
    name: str
    status: str  # ran | done before | skipped | FAILED
    detail: str = ""
    seconds: float = 0.0


def run_notebook(source: Path, executed: Path, params: dict, notebooks: Path) -> None:
    """papermill `source` into a temporary name beside `executed`, renamed on success; on failure it is kept as
    <executed>.failed.ipynb and the error raised."""
    executed.parent.mkdir(parents=True, exist_ok=True)
    partial = temporary(executed, ".partial.ipynb")  # a unique name: two writers never share it
    make_readable(partial)  # papermill writes into it: the executed notebook is as readable as any new file
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


def error_line(err: BaseException) -> str:
    """The one line of a notebook's failure worth printing."""
    if isinstance(err, papermill.PapermillExecutionError):
        return f"{err.ename}: {str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ''}"
    return f"{type(err).__name__}: {err}"


def code_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get(
        "tags", [])]


def done_before(source: Path, executed: Path, params: dict) -> bool:
    """The executed copy finished, with these parameters, from the notebook's current cells."""
    if not executed.exists():
        return False
    done = nbformat.read(executed, as_version=4)
    meta = done.metadata.get("papermill", {})
    return (bool(meta.get("end_time")) and not meta.get("exception") and meta.get("parameters", {}) == params
            and code_cells(done) == code_cells(nbformat.read(source, as_version=4)))


@dataclass
class Shard:
    """One seed of one notebook: what papermill injects and the records the run must leave finished."""
    notebook: str
    seed: int
    parameters: dict
    records: list[Path] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.notebook}.seed{self.seed}"


SAME_MEANING = ("experiment", "dataset", "seed", "rounds", "budget", "model", "queries", "embedding", "noise",
                "noise_rate")  # parameters that a record and an experiment's configuration both hold, alike


def finished(paths: list[Path], expected: dict | None = None) -> bool:
    """Every record exists and is finished (phase-1 records are written once, when finished): False if one is
    missing or unfinished, for its run to compute it. A damaged record raises RecordError, and one whose
    parameters differ from `expected` on a name of SAME_MEANING raises StaleRecordError, each naming the file
    and the fix, so that neither is skipped over as done nor run over."""
    done = True
    for path in paths:  # every one read, so that no damaged or stale record hides behind a missing one
        if not path.exists():
            done = False
            continue
        record = read_json(path)
        stored = record.get("parameters") if isinstance(record, dict) else None
        if not isinstance(stored, dict):
            raise RecordError(f"{path} is not a run record (no parameters); {RERUN}")
        asked = {k: v for k, v in (expected or {}).items() if k in SAME_MEANING and k in stored}
        check_parameters(path, {k: stored[k] for k in asked}, asked)
        done = done and bool(record.get("finished", True))
    return done


def run_shard(source: Path, shard: Shard, executed_dir: Path, notebooks: Path, threads: int | None,
              env: dict) -> dict:
    """Run on a Dask worker: the notebook with `seeds=[k]`; success is every record of the shard finished, not the
    executed notebook. threads: the kernel's CPU threads, or None for this worker's share of its host (the cores
    this process may use, over the worker threads on the host). env: variables the kernel needs (data root, ...).
    Returns where and how long it ran."""
    from distributed import get_client, get_worker
    worker = get_worker()
    if worker.state.nthreads > 1:  # shards set the kernel's environment: two at once in one process would race
        raise RuntimeError(f"Dask worker {worker.address} runs {worker.state.nthreads} tasks at once; start "
                           "workers with --nthreads 1 (one shard per worker process)")
    host = urlparse(worker.address).hostname
    if threads is None:
        info = get_client().scheduler_info()["workers"]
        slots = sum(w["nthreads"] for address, w in info.items() if urlparse(address).hostname == host)
        threads = max(1, usable_cores() // max(1, slots))
    os.environ.update(env)  # the kernel inherits them; this process runs no other shard meanwhile
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read by torch when the kernel imports it
        os.environ[name] = str(threads)
    start = time.perf_counter()
    run_notebook(source, executed_dir / f"{shard.key}.ipynb", shard.parameters, notebooks)
    missing = [str(p) for p in shard.records if not finished([p])]
    if missing:
        raise RuntimeError(f"the notebook finished but left {len(missing)} record(s) unfinished, e.g. {missing[0]}")
    return {"notebook": shard.notebook, "shard": shard.key, "worker": worker.address, "host": socket.gethostname(),
            "threads": threads, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "seconds": round(time.perf_counter() - start, 1)}


class PinGPU(WorkerPlugin):
    """A LocalCluster's worker i sees GPU i modulo the GPUs (set when it starts, before any kernel does)."""

    def __init__(self, gpus: int):
        self.gpus = gpus

    def setup(self, worker):
        os.environ["CUDA_VISIBLE_DEVICES"] = str(int(worker.name) % self.gpus)


def start_client(workers: int | None, scheduler: str | None, gpus: int = 0):
    """A Dask client: on a new LocalCluster of `workers` single-threaded processes (with `gpus`, each has the
    resource GPU=1 and its own device), or on the running cluster at `scheduler` (tcp://HOST:PORT or a scheduler
    file's path)."""
    import dask
    from distributed import Client, LocalCluster
    if scheduler is not None:
        return Client(scheduler) if "://" in scheduler else Client(scheduler_file=scheduler)
    # a shard goes to a worker only when it is free: queued ahead on a busy one, it waited there while another
    # worker sat idle (3 of 4 shards on one worker in a 2-worker run)
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               resources={"GPU": 1} if gpus else None)
    client = Client(cluster)
    if gpus:
        client.register_plugin(PinGPU(gpus))
    return client


def check_cluster(client, gpu: bool) -> int:
    """The number of workers; a GPU grid on a cluster whose workers have no GPU resource would wait forever."""
    workers = client.scheduler_info()["workers"]
    if gpu and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
        raise RuntimeError("the shards need a GPU but no Dask worker has the resource GPU: start the workers with "
                           "--resources GPU=1 (and CUDA_VISIBLE_DEVICES set), or run with --set device=cpu")
    return len(workers)


def run_grid(client, shards: list[Shard], sources: dict, executed_dir: Path, notebooks: Path,
             threads: int | None, env: dict, gpu: bool, collect) -> tuple[dict, list[dict]]:
    """Submit the unfinished shards, and call `collect(name)` as soon as every shard of notebook `name` is done.
    Returns ({notebook: error line of its first failed shard}, one row per shard: where, how long, or why not)."""
    from distributed import as_completed
    rows, failed, remaining, futures = [], {}, {}, {}
    for shard in shards:
        remaining.setdefault(shard.notebook, 0)
        if finished(shard.records):
            rows.append({"notebook": shard.notebook, "shard": shard.key, "status": "done before"})
            continue
        remaining[shard.notebook] += 1
        future = client.submit(run_shard, sources[shard.notebook], shard, executed_dir, notebooks, threads, env,
                               key=f"{shard.key}-{uuid.uuid4().hex[:8]}", pure=False,
                               resources={"GPU": 1} if gpu else None)
        futures[future] = shard
    for name in [n for n, left in remaining.items() if left == 0]:
        collect(name)
    for future in as_completed(list(futures)):
        shard = futures[future]
        try:
            rows.append({**future.result(), "status": "ran"})
        except Exception as err:  # one shard failing must not stop the grid
            rows.append({"notebook": shard.notebook, "shard": shard.key, "status": "FAILED",
                         "detail": error_line(err)})
            failed.setdefault(shard.notebook, f"{shard.key}: {error_line(err)}")
        remaining[shard.notebook] -= 1
        if remaining[shard.notebook] == 0 and shard.notebook not in failed:
            collect(shard.notebook)
    return failed, rows
