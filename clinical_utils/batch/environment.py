"""The process settings every kernel of the batch starts with, and the cores and workers it may use.

    python -m clinical_utils.batch.environment --kernel-env   # ipykernel's --env arguments (make setup)
    python -m clinical_utils.batch.environment --workers      # the default number of batch workers (make reproduce)
"""
from __future__ import annotations

import argparse
import os
import sys

# glibc hands the memory of large freed tensors (a batch's activations) back to the OS at once, so the next batch
# page-faults it in again: a third of a kernel's CPU time went to the system here. Keeping it (up to 4 GiB) makes
# inference 1.7x faster (benchmarks/malloc_tuning.py) and changes no number.
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}
# bf16 results depend on which oneDNN kernels run: a CPU with AMX computes the quick profile's convolutions with
# other kernels than one with AVX512_BF16 only (the reference's), the weights differ in the last bits and every
# later pick follows (0 of 435 records identical uncapped on an AMX Xeon, README). Capping oneDNN at AVX512_BF16
# makes the records repeat on both kinds; it costs AMX machines about half their training speed. fp32 (smoke,
# paper_cpu) runs no AMX kernels.
REFERENCE_ISA = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}
BATCH_ENVIRONMENT = {**MALLOC_TUNING, **REFERENCE_ISA}
# fp32 results differ in the last bits between CPUs with AVX2 only and those with AVX512, because ATen's vector
# kernels, oneDNN's convolutions and MKL's GEMMs each run the widest code path the CPU has, and a wider one adds
# in another order (nbval references made on an AMX Xeon failed 4 cells on an AVX2-only EPYC, CI's kind). The
# tests and their references run with all three capped at AVX2, which every x86-64 CPU here has, and 2 threads,
# because how a reduction is split between threads changes its order too.
PORTABLE_FP32 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
                 "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
KERNEL_GIB = 2  # memory a quick-profile kernel may take (here 3.9 GB in use at the peak of 2 workers' batch)


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one, e.g. not macOS)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers() -> int:
    """Batch workers for this machine: one per usable core, as many as its memory holds at KERNEL_GIB each."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return max(1, min(usable_cores(), int(memory_gib // KERNEL_GIB)))


def restart_in_batch_environment() -> None:
    """Re-execute this script with the BATCH_ENVIRONMENT settings it lacks (glibc and oneDNN read them as a process
    starts), so that a benchmark trains and infers as the batch's kernels do; settings already made stay."""
    if any(name not in os.environ for name in BATCH_ENVIRONMENT):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, {**BATCH_ENVIRONMENT, **os.environ})


def enter_portable_fp32() -> None:
    """Set PORTABLE_FP32 in this process, for itself and the kernels it starts (nbval's, papermill's), over any
    value already set: the tests compare with references made under it. torch reads the thread count as it is
    imported, so this must come first (again later is harmless)."""
    if "torch" in sys.modules and any(os.environ.get(k) != v for k, v in PORTABLE_FP32.items()):
        raise RuntimeError("enter_portable_fp32() ran after torch was imported; call it before anything imports "
                           "torch (tests/conftest.py, tests/render_notebooks.py do so at their top)")
    os.environ.update(PORTABLE_FP32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m clinical_utils.batch.environment",
                                     description=__doc__.split("\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--kernel-env", action="store_true", help="print ipykernel install's --env NAME VALUE pairs")
    what.add_argument("--workers", action="store_true", help="print the default number of batch workers")
    args = parser.parse_args(argv)
    print(" ".join(f"--env {k} {v}" for k, v in BATCH_ENVIRONMENT.items()) if args.kernel_env else default_workers())


if __name__ == "__main__":
    main()
