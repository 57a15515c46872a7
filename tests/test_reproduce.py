import json
import shutil
from pathlib import Path

import nbformat
import pytest

from clinical_utils.batch import environment, reference, reproduce
from clinical_utils.data import DataError
from medmnist_fixtures import write_download_sets

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository copy of the notebooks; blood and path data on fixtures,
    and the batch's data check seeing pathmnist as absent with no network."""
    (tmp_path / "notebooks").mkdir()
    for path in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(path, tmp_path / "notebooks")
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
    run = repo / "results" / "runs" / "smoke"
    executed = run / "executed"
    assert sorted(p.name for p in executed.iterdir()) == ["blood_binary.ipynb", "summary.ipynb"]
    assert sorted(p.name for p in (run / "blood_binary").iterdir()) == ["flqmi", "random"]
    figures = sorted(p.name for p in (run / "figures").iterdir())
    assert figures == [f"blood_binary_{kind}.{ext}" for kind in ("paired", "per_class", "rare")
                       for ext in ("png", "svg")]
    meta = nbformat.read(executed / "blood_binary.ipynb", as_version=4).metadata.papermill
    # every smoke value that differs from the notebook's cell (quick's) is injected, and the run used them
    assert meta.parameters == {**reproduce.notebook_parameters("blood_binary", "smoke", {}), **FIXTURE}
    assert meta.parameters["profile"] == "smoke" and meta.parameters["precision"] == "fp32"
    record = json.loads((run / "blood_binary" / "random" / "seed0.json").read_text())
    assert record["parameters"]["rounds"] == 2 and record["parameters"]["train"]["target_train_accuracy"] is None
    text = reproduce.report(outcomes, "smoke")
    assert "path_longtail" in text and "skipped" in text and "results/runs/smoke/" in text
    # the batch never overwrites notebooks/ or the reference: only --promote does
    assert not nbformat.read(repo / "notebooks" / "blood_binary.ipynb", as_version=4).cells[4].get("outputs")
    assert not (repo / "results" / "smoke").exists()

    again = reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, force=False, root=repo)
    assert [o.status for o in again] == ["done before", "ran"]
    edited = nbformat.read(repo / "notebooks" / "blood_binary.ipynb", as_version=4)
    edited.cells[4].source += "\nprint(len(scenario.pool))"
    nbformat.write(edited, repo / "notebooks" / "blood_binary.ipynb")
    assert [o.status for o in reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, False, repo)][0] == "ran"

    # a run with other parameters is refused, not reused: --force starts its records afresh
    again = reproduce.run_batch(["blood_binary"], "smoke", {**FIXTURE, "epochs": 2}, force=False, root=repo)
    assert again[0].status == "FAILED" and "StaleRecordError" in again[0].detail and "train.epochs" in again[0].detail
    with pytest.raises(reproduce.ConfigError, match="ran with --set overrides"):  # not the profile as it is
        reproduce.promote(repo, "smoke")
    where = {"data_root": "../data", "verify_data": False}  # where the data is: not an override of the profile
    reproduce.run_batch(["blood_binary"], "smoke", where, force=True, root=repo)
    copied = reproduce.promote(repo, "smoke")
    assert repo / "results" / "smoke" / "blood_binary" / "random" / "seed0.json" in copied
    assert len(list((repo / "results" / "smoke" / "blood_binary").glob("*/seed0.json"))) == 13
    assert (repo / "results" / "smoke" / "executed" / "blood_binary.ipynb").exists()


def test_a_failing_notebook_is_reported_and_the_batch_goes_on(repo):
    broken = nbformat.read(repo / "notebooks" / "blood_binary.ipynb", as_version=4)
    broken.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('a cell that fails')"))
    nbformat.write(broken, repo / "notebooks" / "blood_binary.ipynb")
    outcomes = reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, force=False, root=repo)
    assert [o.status for o in outcomes] == ["FAILED", "ran"]  # its records are there: the summary draws them
    assert "RuntimeError: a cell that fails" in outcomes[0].detail
    executed = repo / "results" / "runs" / "smoke" / "executed"
    assert sorted(p.name for p in executed.iterdir()) == ["blood_binary.failed.ipynb", "summary.ipynb"]


def test_a_pool_smaller_than_rounds_times_budget_stops_the_batch_before_any_kernel(repo):
    too_big = {**FIXTURE, "budget": 1000}  # valid alone, but the pool cannot supply it
    with pytest.raises(reproduce.ConfigError, match=r"2 rounds of budget 1000 pick 2000 images, but seed 0's pool"):
        reproduce.run_batch(["blood_binary"], "smoke", too_big, force=False, root=repo)
    assert not (repo / "results" / "runs" / "smoke" / "executed").exists()


def test_done_means_every_record_is_there_finished_and_readable(repo):
    """A finished batch run again checks its records: a damaged one stops it, naming the file and the fix; a
    missing folder is computed again, to the same records; executed notebooks are as readable as any file."""
    reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, force=False, root=repo)
    run = repo / "results" / "runs" / "smoke"
    record = run / "blood_binary" / "random" / "seed0.json"
    first = reference.comparable(json.loads(record.read_text()))
    text = record.read_text()
    record.write_text(text[:len(text) // 2])
    with pytest.raises(reproduce.ConfigError, match=rf"{record} is damaged .* Delete it to compute it again"):
        reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, force=False, root=repo)
    shutil.rmtree(run / "blood_binary")
    assert [o.status for o in reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, False, repo)] == ["ran", "ran"]
    assert reference.comparable(json.loads(record.read_text())) == first
    (repo / "plain").write_text("")
    assert (run / "executed" / "blood_binary.ipynb").stat().st_mode & 0o777 == (repo / "plain").stat().st_mode & 0o777


def test_repeated_set_flags_all_apply_and_a_name_given_two_values_is_refused(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    for sets, message in ((["--set", "device=tpu", "--set", "results_dir=DIR"], "device"),
                          (["--set", "device=tpu", "results_dir=DIR"], "device"),
                          (["--set", "rounds=2", "--set", "rounds=3"], "rounds is given twice, as 2 and 3")):
        with pytest.raises(SystemExit) as stop:
            reproduce.main(["--profile", "smoke", "--only", "pneumonia_binary", *sets])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    for sets in (["--set", "imbalance_ratio=20", "--set", "results_dir=DIR"], ["--set", "imbalance_ratio=20",
                                                                               "results_dir=DIR"]):
        with pytest.raises(SystemExit):
            reproduce.main(["--only", "retina_longtail", *sets])
        assert "'imbalance_ratio' (did you mean 'imbalance_factor'" in capsys.readouterr().err
    assert reproduce._parse_set(["seeds=[0]", "seeds=[0]"]) == {"seeds": [0]}  # the same value twice: one


def test_the_summary_reads_the_records_where_the_notebooks_wrote_them():
    assert reproduce.notebook_parameters("summary", "smoke", {"results_dir": "../elsewhere"})["results_dir"] == \
        "../elsewhere"
    assert reproduce.notebook_parameters("summary", "smoke", {})["results_dir"] == "../results/runs/smoke"


def test_command_line_rejects_bad_input(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    for argv, message in ((["--profile", "fast"], "unknown profile 'fast'"),
                          (["--only", "blood", "--profile", "smoke"], "unknown notebook(s) ['blood']"),
                          (["--only", "blood_binary", "--set", "rounds=0"], "parameter rounds = 0 is not valid"),
                          (["--set", "round=3"], "notebook pneumonia_binary: 'round' (did you mean 'rounds'"),
                          (["--only", "retina_longtail", "--set", "imbalance_ratio=20"],
                           "notebook retina_longtail: 'imbalance_ratio' (did you mean 'imbalance_factor'"),
                          (["--only", "retina_longtail", "--set", "budjet=5"], "'budjet' (did you mean 'budget'"),
                          (["--promote", "--profile", "smoke"], "no run records"),
                          (["--set", "rounds"], "NAME=VALUE")):
        with pytest.raises(SystemExit) as stop:
            reproduce.main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err
    monkeypatch.chdir(repo / "notebooks")
    with pytest.raises(SystemExit):
        reproduce.main([])
    assert "run this from the repository root" in capsys.readouterr().err


def test_the_kernels_get_an_absolute_data_root_and_the_batch_environment(repo, monkeypatch,
                                                                        without_batch_environment):
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MEDMNIST_ROOT", "data")
    monkeypatch.setattr(reproduce, "run_batch", lambda *args: [reproduce.Outcome("blood_binary", "ran")])
    monkeypatch.setattr(reproduce, "report", lambda *args: "")
    assert reproduce.main(["--only", "blood_binary"]) == 0
    assert reproduce.os.environ["MEDMNIST_ROOT"] == str(repo / "data")
    assert all(reproduce.os.environ[name] == value for name, value in environment.BATCH_ENVIRONMENT.items())
    assert reproduce.os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_BF16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")  # a user's own choice (AMX's speed) is kept
    assert reproduce.main(["--only", "blood_binary"]) == 0
    assert reproduce.os.environ["ONEDNN_MAX_CPU_ISA"] == "ALL"


def test_set_values_are_python_literals_or_strings():
    assert reproduce._parse_set(["seeds=[0, 1]", "device=cuda", "lr=0.1", "pool_per_class=None"]) == {
        "seeds": [0, 1], "device": "cuda", "lr": 0.1, "pool_per_class": None}


def test_only_a_skipped_notebook_or_nothing_run_exits_non_zero(repo, monkeypatch):
    monkeypatch.chdir(repo)
    args = ["--profile", "smoke", "--set", "data_root=../data", "verify_data=False"]
    assert reproduce.main(["--only", "path_longtail", *args]) == 1  # asked for, data missing: not a success


def test_a_batch_prints_no_kernel_transport_warnings(repo):
    """The kernels run over IPC: ipykernel's 'running over TCP without encryption' warning and the 'Parent
    appears to have exited' line must not reach the terminal; the batch's own lines do."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "clinical_utils.batch", "--profile", "smoke", "--only",
                           "blood_binary", "--set", "data_root=../data", "verify_data=False",
                           "strategies=['random']", "epochs=1"],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "blood_binary  ran" in out
    assert "without encryption" not in out and "Parent appears to have exited" not in out
    record = json.loads((repo / "results" / "runs" / "smoke" / "blood_binary" / "random" / "seed0.json").read_text())
    assert record["threads"] == 1  # pinned by the batch (--threads), and recorded


def test_a_second_batch_on_the_same_folder_stops_at_once(repo):
    """A batch holds a lock on results/runs/<profile>; another one stops naming the folder and the process."""
    import subprocess
    import sys
    import time

    first = subprocess.Popen([sys.executable, "-m", "clinical_utils.batch", "--profile", "smoke", "--only",
                              "blood_binary", "--set", "data_root=../data", "verify_data=False"], cwd=repo,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = repo / "results" / "runs" / "smoke" / ".batch.pid"  # written atomically once the lock is held
    deadline = time.time() + 120
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    try:
        with pytest.raises(reproduce.ConfigError,
                           match=rf"another batch is running on .*smoke \(process {first.pid}\)"):
            reproduce.run_batch(["blood_binary"], "smoke", FIXTURE, force=False, root=repo)
    finally:
        first.wait(timeout=600)
    assert first.returncode == 0


def test_the_comparison_sorts_records_into_identical_close_and_different(tmp_path):
    """Tied picks listed in another order with metrics within 1e-4 are close, not identical; other picks or a
    larger metric change are different; timings and run facts never count."""
    base = {"parameters": {"seed": 0}, "device": "cpu", "rounds": [
        {"round": 0, "selected": [], "auc": 0.9, "per_class_accuracy": [0.5, 1.0], "train_seconds": 1.0},
        {"round": 1, "selected": [7, 3, 5], "auc": 0.92, "per_class_accuracy": [0.6, 1.0], "train_seconds": 1.0}]}

    def edited(**last):
        record = json.loads(json.dumps(base))
        record["rounds"][1].update(last)
        return record

    ours = {"random": edited(train_seconds=9.0), "tied": edited(selected=[3, 7, 5], auc=0.92 + 3e-5),
            "other_pick": edited(selected=[3, 7, 6]), "auc": edited(auc=0.921), "missing": base}
    for name, record in ours.items():
        for root, value in (("results/runs/smoke", record), ("results/smoke", base)):
            if root == "results/smoke" and name == "missing":
                continue
            path = tmp_path / root / "exp" / name / "seed0.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({**value, "device": root}))
    entry = reference.compare_with_reference(tmp_path, "smoke")["experiments"]["exp"]
    assert entry["records"] == 5 and entry["identical"] == 1
    assert entry["close"] == ["exp/tied/seed0.json"]
    assert entry["different"] == ["exp/auc/seed0.json", "exp/other_pick/seed0.json"]
    assert entry["not in reference"] == ["exp/missing/seed0.json"]
    assert entry["largest differences"]["auc"] == pytest.approx(1e-3)
    line = reference.reproduction_lines(reference.compare_with_reference(tmp_path, "smoke"))[1]
    assert line == ("  exp: 1 of 5 records identical, 1 close (the same picks, every metric within 0.0001), "
                    "2 different, 1 not in the reference; largest differences: auc 0.001")
