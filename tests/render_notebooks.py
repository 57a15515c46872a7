"""Refresh the nbval references in tests/notebooks/ (`make test-notebooks`): every notebook executed with papermill
under the smoke profile, outputs kept. Run it when a change to the notebooks or the package is meant to change
their outputs, look at the diff, commit it.

Notebooks of sets this machine has read the real files ($MEDMNIST_ROOT); those that need a download read small
fixtures in the same format (fixture_data/, written here and by the test session). The summary reads the smoke
records of three experiments, committed in records/.
"""
import shutil
import sys
from pathlib import Path

import nbformat
import papermill

from clinical_utils.batch.environment import enter_portable_fp32

enter_portable_fp32()  # as the tests run: before the imports below bring in torch

from clinical_utils.batch.grid import QuietKernelManager  # noqa: E402
from clinical_utils.batch.reproduce import notebook_parameters  # noqa: E402
from clinical_utils.experiments import (EXPERIMENTS, OFFLINE, configure, load_data, run_experiment,  # noqa: E402
                                        run_noisy_experiment)
from conftest import write_labeling_demo  # noqa: E402
from medmnist_fixtures import write_download_sets  # noqa: E402

HERE = Path(__file__).resolve().parent / "notebooks"
NOTEBOOKS = HERE.parent.parent / "notebooks"
FIXTURE_DATA = "fixture_data"  # relative to tests/notebooks, where nbval runs the kernels
RECORDS = "records"
SUMMARY_EXPERIMENTS = ("pneumonia_binary", "retina_longtail")


def smoke_parameters(name: str) -> dict:
    if name == "label_my_images":  # the demo folder, labeled by its answer key; fp32, because bf16 weights depend
        # on the CPU's oneDNN kernels (an AMX Xeon's reference failed on an AVX512-BF16 EPYC), fp32 ones do not
        return {"folder": f"{FIXTURE_DATA}/pneumonia_demo", "labels": f"{FIXTURE_DATA}/pneumonia_demo/labels.csv",
                "answer_key": f"{FIXTURE_DATA}/pneumonia_demo_answers.csv", "precision": "fp32"}
    if name == "summary":
        return {"results_dir": RECORDS, "figures_dir": None, "tables_dir": None}
    params = {**notebook_parameters(name, "smoke", {}), "results_dir": None}  # smoke keeps no records
    if name not in OFFLINE:
        params.update(data_root=FIXTURE_DATA, verify_data=False)
    return params


def main() -> None:
    write_download_sets(HERE / FIXTURE_DATA)
    shutil.rmtree(HERE / RECORDS, ignore_errors=True)
    for name in SUMMARY_EXPERIMENTS:
        config = configure(name, profile="smoke", results_dir=str(HERE / RECORDS))
        run_experiment(load_data(config), config, progress=False)
    config = configure("retina_noisy", profile="smoke", results_dir=str(HERE / RECORDS))
    run_noisy_experiment(load_data(config), config, progress=False)
    for pt in (HERE / RECORDS).rglob("*.pt"):  # the summary reads no weights; keep the repository small
        pt.unlink()
    write_labeling_demo(HERE / FIXTURE_DATA)
    for name in [*EXPERIMENTS, "summary", "label_my_images"]:
        print(name, file=sys.stderr)
        out = HERE / f"{name}.ipynb"
        papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", out, parameters=smoke_parameters(name),
                                   kernel_name="python3", cwd=str(HERE), progress_bar=False,
                                   kernel_manager_class=QuietKernelManager)
        strip_images(out)


def strip_images(path: Path) -> None:
    """nbval does not compare images, so the references keep only the figures' text (megabytes less)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("image/png", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    main()
