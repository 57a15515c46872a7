import shutil
from pathlib import Path

import nbformat
import pytest

from clinical_utils import reproduce
from clinical_utils.data import DataError
from medmnist_fixtures import write_download_sets

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository copy with two experiment notebooks and the summary; blood and path data on fixtures,
    and the batch's data check seeing pathmnist as absent with no network."""
    (tmp_path / "notebooks").mkdir()
    for name in ("blood_binary", "path_longtail", "summary"):
        shutil.copy(NOTEBOOKS / f"{name}.ipynb", tmp_path / "notebooks")
    write_download_sets(tmp_path / "data")

    def ensure_file(flag, size=28, root=None, download=True):
        if flag == "pathmnist":
            raise DataError("pathmnist.npz is not in the folder and downloading it failed (no network)")
        return Path(root) / f"{flag}.npz"

    monkeypatch.setattr(reproduce, "ensure_file", ensure_file)
    return tmp_path


FIXTURE = {"data_root": "../data", "verify_data": False, "strategies": ["random", "flqmi"], "epochs": 1}


def test_batch_runs_skips_reports_and_resumes(repo, capsys):
    outcomes = reproduce.run_batch(["blood_binary", "path_longtail"], "smoke", FIXTURE, force=False, root=repo)
    status = {o.name: o.status for o in outcomes}
    assert status == {"blood_binary": "ran", "path_longtail": "skipped", "summary": "ran"}
    assert "downloading it failed" in next(o.detail for o in outcomes if o.name == "path_longtail")
    executed = repo / "results" / "smoke" / "executed"
    assert sorted(p.name for p in executed.iterdir()) == ["blood_binary.ipynb", "summary.ipynb"]
    assert sorted(p.name for p in (repo / "results" / "smoke" / "blood_binary").iterdir()) == ["flqmi", "random"]
    figures = sorted(p.name for p in (repo / "figures" / "smoke").iterdir())
    assert figures == [f"blood_binary_{kind}.{ext}" for kind in ("per_class", "rare") for ext in ("png", "svg")]
    meta = nbformat.read(executed / "blood_binary.ipynb", as_version=4).metadata.papermill
    assert meta.parameters == {"profile": "smoke", "results_dir": "../results/smoke", **FIXTURE}
    text = reproduce.report(outcomes, "smoke")
    assert "path_longtail" in text and "skipped" in text and "figures/smoke/" in text
    # not published: only the quick profile without overrides overwrites notebooks/
    assert not nbformat.read(repo / "notebooks" / "blood_binary.ipynb", as_version=4).cells[4].get("outputs")

    again = reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, force=False, root=repo)
    assert [o.status for o in again] == ["done before", "ran"]
    edited = nbformat.read(repo / "notebooks" / "blood_binary.ipynb", as_version=4)
    edited.cells[4].source += "\nprint(len(scenario.pool))"
    nbformat.write(edited, repo / "notebooks" / "blood_binary.ipynb")
    assert [o.status for o in reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, False, repo)][0] == "ran"


def test_a_failing_notebook_is_reported_and_the_batch_goes_on(repo):
    too_big = {**FIXTURE, "budget": 1000}  # valid alone, but the pool cannot supply it: the notebook fails
    outcomes = reproduce.run_batch(["blood_binary"], "smoke", too_big, force=False, root=repo)
    assert [o.status for o in outcomes] == ["FAILED", "skipped"]  # no records at all: no summary
    assert "ValueError" in outcomes[0].detail and "pool" in outcomes[0].detail
    executed = repo / "results" / "smoke" / "executed"
    assert sorted(p.name for p in executed.iterdir()) == ["blood_binary.failed.ipynb"]


def test_command_line_rejects_bad_input(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    for argv, message in ((["--profile", "fast"], "unknown profile 'fast'"),
                          (["--only", "blood", "--profile", "smoke"], "unknown notebook(s) ['blood']"),
                          (["--only", "blood_binary", "--set", "rounds=0"], "parameter rounds = 0 is not valid"),
                          (["--set", "round=3"], "unknown parameter(s) ['round']"),
                          (["--set", "rounds"], "NAME=VALUE")):
        with pytest.raises(SystemExit) as stop:
            reproduce.main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err
    monkeypatch.chdir(repo / "notebooks")
    with pytest.raises(SystemExit):
        reproduce.main([])
    assert "run this from the repository root" in capsys.readouterr().err


def test_a_relative_data_root_is_made_absolute_for_the_kernels(repo, monkeypatch):
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MEDMNIST_ROOT", "data")
    monkeypatch.setattr(reproduce, "run_batch", lambda *args: [])
    monkeypatch.setattr(reproduce, "report", lambda *args: "")
    assert reproduce.main(["--only", "blood_binary"]) == 0
    assert reproduce.os.environ["MEDMNIST_ROOT"] == str(repo / "data")


def test_set_values_are_python_literals_or_strings():
    assert reproduce._parse_set(["seeds=[0, 1]", "device=cuda", "lr=0.1", "pool_per_class=None"]) == {
        "seeds": [0, 1], "device": "cuda", "lr": 0.1, "pool_per_class": None}
