"""The grid on a real Dask LocalCluster of 2 worker processes: the serial batch's records, shard by shard, even
when a worker is killed mid-shard."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clinical_utils.active.loop import STRATEGIES
from clinical_utils.batch import reference, reproduce
from clinical_utils.experiments import METHODS
from clinical_utils.records import read_json, record_paths
from clinical_utils.refinement.refine import SAMPLERS
from medmnist_fixtures import write_download_sets

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["blood_binary", "derma_noisy"]  # one CLINICAL notebook, one label-refinement notebook
SETTINGS = {"data_root": "../data", "verify_data": False, "seeds": [0, 1]}
COMMAND = [sys.executable, "-m", "clinical_utils.batch", "--profile", "smoke", "--only", *NAMES,
           "--set", *(f"{k}={v!r}".replace(" ", "") for k, v in SETTINGS.items()), "--threads", "1", "--workers", "2"]


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for path in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(path, tmp_path / "notebooks")
    write_download_sets(tmp_path / "data")
    return tmp_path


def records(folder: Path) -> dict:
    return {str(p.relative_to(folder)): reference.comparable(read_json(p)) for p in record_paths(folder, phase1=None)}


def kill_a_worker_mid_shard(batch: subprocess.Popen, run: Path) -> None:
    """SIGKILL a Dask worker process while its kernel runs a shard that has written a record (not the batch's own
    collect kernel, whose parent is the batch)."""
    def shard_kernel(process: psutil.Process) -> bool:
        try:
            return "ipykernel" in " ".join(process.cmdline()) and process.ppid() != batch.pid
        except psutil.Error:  # it ended (or is ending) between the listing and the look: not one to kill
            return False

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and batch.poll() is None:
        kernels = [p for p in psutil.Process(batch.pid).children(recursive=True) if shard_kernel(p)]
        if kernels and record_paths(run, phase1=None):
            try:
                os.kill(kernels[0].ppid(), signal.SIGKILL)
                return
            except (psutil.Error, ProcessLookupError):  # the worker ended first: look again
                pass
        time.sleep(0.2)
    pytest.fail("no shard kernel to kill: the grid ended or never started a kernel")


def test_a_grid_gives_the_serial_records_and_survives_a_killed_worker(repo):
    serial = subprocess.run(COMMAND[:-2], cwd=repo, capture_output=True, text=True, timeout=900)  # no --workers
    assert serial.returncode == 0, serial.stdout + serial.stderr
    run = repo / "results" / "runs" / "smoke"
    expected = records(run)
    assert len(expected) == 2 * (len(STRATEGIES) + len(METHODS) + len(SAMPLERS))  # 2 seeds
    shutil.rmtree(run)

    batch = subprocess.Popen(COMMAND, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kill_a_worker_mid_shard(batch, run)
    first = batch.communicate(timeout=900)[0]
    # the killed worker's shard ran again on a live worker, resuming from its records
    assert batch.returncode == 0 and "Restarting worker" in first, first
    assert records(run) == expected
    shards = read_json(run / "grid.json")["shards"]
    assert sorted(row["shard"] for row in shards) == sorted(f"{n}.seed{k}" for n in NAMES for k in (0, 1))
    assert {row["status"] for row in shards} == {"ran"} and {row["threads"] for row in shards} == {1}
    # re-submitted (the full notebooks gone, so they are collected again), the grid finds every shard's records
    # finished and runs none of them
    for name in NAMES:
        (run / "executed" / f"{name}.ipynb").unlink()
    again = subprocess.run(COMMAND, cwd=repo, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {row["status"] for row in read_json(run / "grid.json")["shards"]} == {"done before"}
    assert records(run) == expected
    assert not list(run.glob("executed/**/.*.partial.ipynb"))  # nothing half-written stays behind
    # done is decided from the records: a damaged one stops the grid before any shard, naming it and the fix;
    # a missing one is computed again by its shard alone
    record = run / "blood_binary" / "random" / "seed1.json"
    record.write_text(record.read_text()[:100])
    damaged = subprocess.run(COMMAND, cwd=repo, capture_output=True, text=True, timeout=900)
    assert damaged.returncode == 2 and "random/seed1.json is damaged" in damaged.stderr, damaged.stderr
    record.unlink()
    missing = subprocess.run(COMMAND, cwd=repo, capture_output=True, text=True, timeout=900)
    assert missing.returncode == 0, missing.stdout + missing.stderr
    ran = {row["shard"] for row in read_json(run / "grid.json")["shards"] if row["status"] == "ran"}
    assert ran == {"blood_binary.seed1"} and records(run) == expected


def test_the_grid_needs_a_results_folder_and_one_kind_of_cluster(repo, monkeypatch, capsys):
    with pytest.raises(reproduce.ConfigError, match="results_dir=None"):
        reproduce.run_batch(["blood_binary"], "smoke", {**SETTINGS, "results_dir": None}, False, repo, workers=2)
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit):
        reproduce.main(["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"])
    assert "not both" in capsys.readouterr().err
