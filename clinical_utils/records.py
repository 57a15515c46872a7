"""Run records: JSON files written atomically, read with errors that name the file, resumed only when equal.

A record is {"parameters": everything that determines the run, "versions", "git_commit", "device", "threads",
"rounds": [...], "finished": bool, ...}. It is reused (returned when finished, continued when not) only when its
stored parameters equal the asked ones; otherwise `StaleRecordError` names the parameters that differ and how to
run again. Files are written through a unique temporary file in the same folder and an atomic rename, so readers
and concurrent writers never see half a file.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

PACKAGES = ("clinical-utils", "torch", "torchvision", "medmnist", "submodlib-py", "numpy", "scikit-learn", "scipy",
            "cleanlab", "lightly")
RERUN = ("delete that file (or its experiment's folder) to compute it again, or run the batch with --force, "
         "which starts the notebook's records afresh")


class RecordError(ValueError):
    """A record that cannot be read; the message names the file and the fix."""


class StaleRecordError(RecordError):
    """A stored record made with other parameters; the message names them and how to run again."""


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit(folder: Path | None = None) -> str | None:
    """HEAD of the git checkout holding `folder` (default: this package's), or None outside one."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=folder or Path(__file__).resolve().parent)
        return done.stdout.strip() or None if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def describe_device(device) -> str:
    """The device a run used, for its record: on CUDA also the GPU's name and the CUDA_VISIBLE_DEVICES that mapped
    it (a grid worker's GPU); on the CPU its vector instructions (torch's capability: avx2, avx512), the bf16
    ones it has and the oneDNN cap in force, because results differ in the last bits between AVX2 and AVX512
    kernels (fp32 too) and between AMX and AVX512_BF16 kernels (bf16; environment.REFERENCE_ISA)."""
    device = torch.device(device)
    if device.type == "cpu":
        has = [torch.backends.cpu.get_cpu_capability().lower()]
        has += [name for name, present in (("avx512_bf16", torch.cpu._is_avx512_bf16_supported()),
                                           ("amx", torch.cpu._is_amx_tile_supported())) if present]
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "unset")
        return f"cpu ({', '.join(has)}; ONEDNN_MAX_CPU_ISA={cap})"
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return (f"cuda:{index} ({torch.cuda.get_device_name(index)}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")


def fingerprint(*arrays) -> str:
    """SHA-1 of integer index arrays (e.g. a scenario's sets): equal only for equal arrays in equal order."""
    digest = hashlib.sha1()
    for idx in arrays:
        digest.update(np.ascontiguousarray(idx, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()


def file_digest(path: str | os.PathLike, algorithm: str = "sha1") -> str:
    """The hex digest of a file's bytes (a data file's MD5, a weights file's SHA-1), read in 4 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


_UMASK = os.umask(0o022)  # reading the umask means setting it: put it straight back
os.umask(_UMASK)


def make_readable(path: Path) -> None:
    """Give a file made by mkstemp (owner-only) the permissions of any new file (the umask's)."""
    os.chmod(path, 0o666 & ~_UMASK)


def _writer() -> str:
    """This process, as temporary names carry it: host, process-id namespace and process id."""
    return f"{_host()}-{os.getpid()}"


def _host() -> str:
    """The host and its process-id namespace (containers sharing a host name do not share process ids); no dots,
    at which temporary names are split."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # no /proc (macOS): the host name alone
        namespace = 0
    return f"{socket.gethostname().replace('.', '_')}~{namespace}"


def temporary(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty file beside `path` for writing it: a unique name that says which process writes it, so that
    `remove_stale_temporaries` can tell a killed writer's leftovers from a live writer's file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer()}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files under `folder` whose writer, a process on this host, is gone (killed while it
    wrote); those of live writers and of other hosts stay. Returns the removed paths."""
    host, removed = _host(), []
    for tmp in Path(folder).rglob(".*.*.tmp"):
        writer = tmp.name.rsplit(".", 3)[-3] if tmp.name.count(".") >= 4 else ""
        name, _, pid = writer.rpartition("-")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_atomic(path: Path, write) -> None:
    """Create `path` by `write(temporary_path)` and a rename: a unique temporary name in the same folder, so two
    writers never share it and a reader sees the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    try:
        write(tmp)
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, record: dict) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))


def write_csv_atomic(path: Path, header: list[str], rows) -> None:
    """A CSV with a header row, written as `write_atomic` writes."""
    def write(tmp: Path):
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(header)
            out.writerows(rows)
    write_atomic(path, write)


def read_json(path: Path) -> dict:
    """A stored record; a truncated or damaged file is a RecordError naming it and the fix."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError(f"{path} is damaged ({err}); it was not written by this package in one piece. "
                          f"Delete it to compute it again.") from None


def differing(stored: dict, asked: dict, prefix: str = "") -> list[str]:
    """Dotted names of the entries where two parameter dicts differ, with both values."""
    out = []
    for key in sorted(set(stored) | set(asked), key=str):
        a, b = stored.get(key, "<absent>"), asked.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differing(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: stored {a!r}, asked {b!r}")
    return out


def check_parameters(path: Path, stored: dict, asked: dict) -> None:
    if stored != asked:
        raise StaleRecordError(f"{path} holds a run with other parameters ({'; '.join(differing(stored, asked))}); "
                               f"{RERUN}")


def record_path(results_dir: str | os.PathLike, experiment: str, name: str, seed: int, phase1: bool = False) -> Path:
    """Where a run's record lives: results_dir/<experiment>/<name>/seed<seed>.json for a strategy's (or label
    refinement's sampler's) run, results_dir/<experiment>/phase1/<name>/seed<seed>.json for a phase-1 method's."""
    return Path(results_dir, experiment, *(("phase1",) if phase1 else ()), name, f"seed{seed}.json")


def record_paths(results_dir: str | os.PathLike, experiment: str = "*", phase1: bool | None = False) -> list[Path]:
    """The records under results_dir, sorted: of one experiment or all ("*"); the runs' (phase1=False), the phase-1
    methods' (True) or both (None)."""
    runs = sorted(Path(results_dir).glob(f"{experiment}/*/seed*.json"))
    methods = sorted(Path(results_dir).glob(f"{experiment}/phase1/*/seed*.json"))
    return runs if phase1 is False else methods if phase1 else sorted(runs + methods)


class RunRecord:
    """One run's record as it grows, written after every change when it has a path (None: kept in memory only).

    Opened, it is new or the stored record continued (`open_record`); `append` adds a round, `finish` marks it
    finished. `data` is the record itself, as it is written."""

    def __init__(self, path: str | os.PathLike | None, parameters: dict, rare_classes, device):
        self.path = None if path is None else Path(path)
        self.data = open_record(self.path, parameters, rare_classes, device)

    @property
    def finished(self) -> bool:
        return self.data["finished"]

    @property
    def rounds(self) -> list[dict]:
        return self.data["rounds"]

    def append(self, entry: dict) -> None:
        self.data["rounds"].append(entry)
        self._write()

    def finish(self) -> dict:
        self.data["finished"] = True
        self._write()
        return self.data

    def _write(self) -> None:
        if self.path is not None:
            write_json_atomic(self.path, self.data)


def open_record(path: Path | None, parameters: dict, rare_classes, device) -> dict:
    """A new run record, or the one stored at `path` continued: its rounds kept, a finished one returned as it is.
    A stored record with other parameters is a StaleRecordError, so a run only ever resumes its own rounds."""
    record = {"parameters": parameters, "rare_classes": [int(c) for c in rare_classes], "versions": versions(),
              "git_commit": git_commit(), "device": describe_device(device), "threads": torch.get_num_threads(),
              "rounds": [], "finished": False}
    if path is not None and path.exists():
        previous = read_json(path)
        check_parameters(path, {**previous["parameters"], "rare_classes": previous["rare_classes"]},
                         {**parameters, "rare_classes": record["rare_classes"]})
        if previous["finished"]:
            return previous
        record["rounds"] = previous["rounds"]
    return record


@contextmanager
def results_folder(results_dir):
    """`results_dir` as a Path, or, for None, a temporary folder removed afterwards (nothing kept)."""
    if results_dir is not None:
        yield Path(results_dir)
        return
    with tempfile.TemporaryDirectory(prefix="clinical-utils-") as tmp:
        yield Path(tmp)
