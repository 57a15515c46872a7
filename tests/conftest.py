"""Fixtures: small files in MedMNIST's .npz format and a folder of scans with a labels CSV, written by the tests, and
the offline real data."""
import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinical_utils.batch.environment import BATCH_ENVIRONMENT, PORTABLE_FP32, enter_portable_fp32
from medmnist_fixtures import write_download_sets, write_medmnist_npz

enter_portable_fp32()  # before any test imports torch: the nbval kernels compute as the references did


@pytest.fixture(autouse=True)
def portable_fp32_after_each_test(monkeypatch):
    """PORTABLE_FP32 back after every test, whatever it set (reproduce.main sets the thread count in os.environ),
    so that kernels started later compute as the references did."""
    for name, value in PORTABLE_FP32.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def fixture_root(tmp_path):
    """A folder with an RGB multi-class set (bloodmnist, 8 classes) and a grey binary one (pneumoniamnist)."""
    write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8, channels=3, n=(400, 80, 80))
    write_medmnist_npz(tmp_path, "pneumoniamnist", n_classes=2, channels=1, n=(300, 60, 60), seed=1)
    return tmp_path


@pytest.fixture
def real_root():
    """The official offline files; skipped only where MEDMNIST_ROOT is not set (CI sets it)."""
    root = os.environ.get("MEDMNIST_ROOT")
    if not root:
        pytest.skip("MEDMNIST_ROOT is not set; point it at a folder with the official MedMNIST files")
    return Path(root)


@pytest.fixture
def without_batch_environment(monkeypatch):
    """BATCH_ENVIRONMENT's variables unset, and the session's values back afterwards whatever the test sets."""
    for name in BATCH_ENVIRONMENT:
        monkeypatch.setenv(name, "")  # records the value to restore, which delenv alone would not for an unset one
        monkeypatch.delenv(name)


@pytest.fixture
def folder(tmp_path):
    """Grey 28-pixel scans of two classes told apart by brightness: 'clear' (dark) and 'lesion' (bright, rare).
    Labeled: train 6 clear + 3 lesion, val 3 + 3; the pool: 24 clear + 6 lesion, unlabeled."""
    rng = np.random.default_rng(0)
    root = tmp_path / "scans"
    (root / "pool").mkdir(parents=True)
    rows = []

    def write(rel, bright):
        pixels = rng.normal(190 if bright else 60, 20, (28, 28)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / rel)

    for split, n_clear, n_lesion in (("train", 6, 3), ("val", 3, 3)):
        for k in range(n_clear + n_lesion):
            rel = f"{split}_{k}.png"
            write(rel, k >= n_clear)
            rows.append((rel, "lesion" if k >= n_clear else "clear", split))
    truth = {}
    for k in range(30):
        rel = f"pool/scan_{k:02d}.png"
        write(rel, k % 5 == 0)
        truth[rel] = "lesion" if k % 5 == 0 else "clear"
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "split"), *rows])
    return root, tmp_path / "labels.csv", truth


NOTEBOOK_DIR = Path(__file__).parent / "notebooks"


def pytest_sessionstart(session):
    """The nbval copies of the download-needing notebooks read fixtures from tests/notebooks/fixture_data;
    label_my_images labels the demo folder there, from a fresh start."""
    write_download_sets(NOTEBOOK_DIR / "fixture_data")
    write_labeling_demo(NOTEBOOK_DIR / "fixture_data")


def write_labeling_demo(folder: Path) -> None:
    """The demo folder label_my_images' nbval copy reads (PneumoniaMNIST as PNG files), its labeling state
    cleared; nothing without the offline files (the notebook is then skipped)."""
    import shutil

    from clinical_utils.labeling import demo
    from clinical_utils.data import DataError, ensure_file
    try:
        ensure_file("pneumoniamnist", download=False)
    except DataError:
        return
    shutil.rmtree(folder / "pneumonia_demo" / ".labeling", ignore_errors=True)
    demo.write_pneumonia_folder(folder / "pneumonia_demo")


def pytest_collection_modifyitems(config, items):
    """The nbval copies of the offline notebooks need the real files: skip them, saying why, without them."""
    from clinical_utils.data import DataError, ensure_file
    from clinical_utils.experiments import EXPERIMENTS, OFFLINE

    missing = {}
    datasets = {**{n: e.values["dataset"] for n, e in EXPERIMENTS.items()},
                "label_my_images": "pneumoniamnist"}  # its demo folder is written from PneumoniaMNIST
    for name in [*OFFLINE, "label_my_images"]:
        try:
            ensure_file(datasets[name], download=False)
        except DataError as err:
            missing[name] = str(err)
    for item in items:
        name = Path(str(item.fspath)).stem
        if item.fspath.ext == ".ipynb" and name in missing:
            item.add_marker(pytest.mark.skip(reason=missing[name]))
