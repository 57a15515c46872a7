import os
import subprocess
import sys

import pytest
import torch

from clinical_utils.batch import environment
from clinical_utils.training.train import native_bf16


def test_the_kernel_spec_gets_every_batch_setting():
    printed = subprocess.run([sys.executable, "-m", "clinical_utils.batch.environment", "--kernel-env"],
                             capture_output=True, text=True, check=True).stdout.split()
    pairs = dict(zip(printed[1::3], printed[2::3]))
    assert printed[::3] == ["--env"] * len(environment.BATCH_ENVIRONMENT) and pairs == environment.BATCH_ENVIRONMENT
    assert pairs["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_BF16"


def test_the_test_session_runs_under_the_portable_fp32_settings():
    # the kernels it starts inherit them: nbval's (--nbval-current-env) and render_notebooks' (python3) kernel specs
    # set no env, unlike clinical-utils', whose ONEDNN_MAX_CPU_ISA would win over the cap
    assert {name: os.environ.get(name) for name in environment.PORTABLE_FP32} == environment.PORTABLE_FP32
    assert torch.get_num_threads() == 2
    assert torch.backends.cpu.get_cpu_capability() in ("AVX2", "DEFAULT")  # capped: never AVX512, wherever it runs
    assert not native_bf16(torch.device("cpu"))  # oneDNN capped too: no AVX512 (bf16) kernels, wherever it runs


def test_the_portable_settings_come_too_late_once_torch_is_imported(monkeypatch):
    environment.enter_portable_fp32()  # already in force: nothing to do
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with pytest.raises(RuntimeError, match="before anything imports torch"):
        environment.enter_portable_fp32()


def test_default_workers_are_bounded_by_cores_and_memory(monkeypatch):
    monkeypatch.setattr(environment, "usable_cores", lambda: 64)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 8 * (1 << 30) // 4096}  # 8 GiB
    monkeypatch.setattr(environment.os, "sysconf", pages.__getitem__)
    assert environment.default_workers() == 8 // environment.KERNEL_GIB
    monkeypatch.setattr(environment, "usable_cores", lambda: 1)
    assert environment.default_workers() == 1


def test_a_benchmark_restarts_once_with_the_settings_it_lacks(monkeypatch, without_batch_environment):
    calls = []
    monkeypatch.setattr(environment.os, "execve", lambda *args: calls.append(args))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")  # a caller's own choice stays
    environment.restart_in_batch_environment()
    (executable, argv, env), = calls
    assert executable == sys.executable and argv == sys.orig_argv
    assert env["ONEDNN_MAX_CPU_ISA"] == "ALL" and env["MALLOC_MMAP_THRESHOLD_"] == str(4 << 30)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")
    environment.restart_in_batch_environment()  # nothing lacking: no restart
    assert len(calls) == 1


@pytest.mark.parametrize("argv", [[], ["--kernel-env", "--workers"]])
def test_the_command_wants_one_question(argv):
    with pytest.raises(SystemExit):
        environment.main(argv)
