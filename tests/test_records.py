"""Run records: reused only when every parameter is equal, written atomically under concurrency, damage named."""
import json
import multiprocessing
import subprocess
import sys

import pytest

from clinical_utils import records
from clinical_utils.experiments import configure, load_data, run_experiment, run_noisy_experiment
from medmnist_fixtures import write_download_sets


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(write_download_sets(tmp_path_factory.mktemp("data")))


def _clinical(data_root, results, **changes):
    params = {"strategies": ["random"], "rounds": 1, "epochs": 1, **changes}
    config = configure("blood_binary", profile="smoke", data_root=data_root, verify_data=False,
                       results_dir=str(results), **params)
    return run_experiment(load_data(config), config, progress=False)


@pytest.mark.parametrize("change, named", [({"epochs": 2}, "train.epochs"), ({"budget": 3}, "budget"),
                                           ({"imbalance_ratio": 10}, "scenario_sha1"),
                                           ({"embedding": "features"}, "embedding"),
                                           ({"class_weight": "balanced"}, "train.class_weight"),
                                           ({"rare_classes": [0]}, "rare_classes")])
def test_a_clinical_record_with_other_parameters_is_refused(data_root, tmp_path, change, named):
    _clinical(data_root, tmp_path)
    with pytest.raises(records.StaleRecordError, match=rf"{named}: stored .*--force"):
        _clinical(data_root, tmp_path, **change)


def test_options_added_later_are_stored_only_when_used(data_root, tmp_path):
    """A record made before class_weight existed (no such key) is the same run as class_weight=None: it is reused,
    and a run with class weights stores them, so the two never stand in for each other."""
    [record] = _clinical(data_root, tmp_path)
    assert "class_weight" not in record["parameters"]["train"]
    [again] = _clinical(data_root, tmp_path, class_weight=None)
    assert again == record
    [weighted] = _clinical(data_root, tmp_path / "weighted", class_weight="balanced")
    assert weighted["parameters"]["train"]["class_weight"] == "balanced"
    assert weighted["rounds"][0]["per_class_accuracy"] != record["rounds"][0]["per_class_accuracy"]


def _noisy(data_root, results, **changes):
    params = {"samplers": ["random"], "epochs": 3, "rounds": 1, **changes}
    config = configure("derma_noisy", profile="smoke", data_root=data_root, verify_data=False,
                             results_dir=str(results), **params)
    return run_noisy_experiment(load_data(config), config, progress=False)


@pytest.mark.parametrize("change, named", [({"mix_ratio": 0.5}, "coteaching.mix_ratio"),
                                           ({"window": 3}, "coteaching.window"),
                                           ({"lr": 0.05}, "train.lr")])
def test_phase_one_and_phase_two_records_know_their_upstream(data_root, tmp_path, change, named):
    """Phase 1 is not silently retrained over its record; phase 2 is not reused on another phase 1."""
    _noisy(data_root, tmp_path)
    with pytest.raises(records.StaleRecordError, match=rf"phase1/.*{named}: stored"):
        _noisy(data_root, tmp_path, **change)
    for path in (tmp_path / "derma_noisy" / "phase1").rglob("seed0.*"):  # phase 1 redone, phase 2 left stale
        path.unlink()
    with pytest.raises(records.StaleRecordError, match=rf"random/seed0.json .*phase1.{named}: stored"):
        _noisy(data_root, tmp_path, **change)


def test_a_damaged_record_names_the_file_and_the_fix(data_root, tmp_path):
    _clinical(data_root, tmp_path)
    path = tmp_path / "blood_binary" / "random" / "seed0.json"
    path.write_text(path.read_text()[:100])  # truncated
    with pytest.raises(records.RecordError, match=r"seed0.json is damaged .*Delete it"):
        _clinical(data_root, tmp_path)


def _writer(path, value, count):
    for i in range(count):
        records.write_json_atomic(path, {"writer": value, "i": i, "padding": "x" * 20000})


def test_concurrent_writers_and_a_reader_never_see_half_a_file(tmp_path):
    path = tmp_path / "r.json"
    records.write_json_atomic(path, {"writer": -1})
    writers = [multiprocessing.Process(target=_writer, args=(path, w, 300)) for w in (0, 1)]
    for w in writers:
        w.start()
    reads = bad = 0
    while any(w.is_alive() for w in writers):
        try:
            json.loads(path.read_text())
        except json.JSONDecodeError:
            bad += 1
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert reads > 0 and bad == 0
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind


def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    """The temporary file is owner-only (mkstemp); the record must be as readable as any file the user creates."""
    records.write_json_atomic(tmp_path / "r.json", {"a": 1})
    (tmp_path / "plain.json").write_text("{}")
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == (tmp_path / "plain.json").stat().st_mode & 0o777


def test_smoke_runs_without_a_results_folder_leave_nothing(data_root, tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = configure("blood_binary", profile="smoke", data_root=data_root, verify_data=False,
                       strategies=["random"], rounds=1, epochs=1)
    assert config.results_dir is None
    run_experiment(load_data(config), config, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_one_smoke_experiment_twice_in_fresh_processes_gives_identical_records(data_root, tmp_path):
    """A seed reproduces bit for bit on the CPU (same torch, same thread count) across processes."""
    script = ("import sys; from clinical_utils.experiments import configure, load_data, run_experiment; "
              "c = configure('blood_binary', profile='smoke', data_root=sys.argv[1], verify_data=False, "
              "strategies=['flqmi', 'entropy'], results_dir=sys.argv[2]); run_experiment(load_data(c), c, False)")
    for out in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, data_root, str(tmp_path / out)], check=True, timeout=600)
    for strategy in ("flqmi", "entropy"):
        a, b = (json.loads((tmp_path / out / "blood_binary" / strategy / "seed0.json").read_text())
                for out in ("a", "b"))
        strip = lambda r: [{k: v for k, v in x.items() if not k.endswith("seconds")} for x in r["rounds"]]
        assert strip(a) == strip(b) and a["parameters"] == b["parameters"] and a["threads"] == b["threads"]


def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_records(data_root, tmp_path):
    """kill -9 while records are being written; the rerun continues and ends with the same records."""
    import os
    import signal
    import time

    script = ("import sys; from clinical_utils.experiments import configure, load_data, run_experiment; "
              "c = configure('blood_binary', profile='smoke', data_root=sys.argv[1], verify_data=False, "
              "strategies=['flqmi', 'random'], seeds=[0, 1], results_dir=sys.argv[2]); "
              "run_experiment(load_data(c), c, False)")
    killed = subprocess.Popen([sys.executable, "-c", script, data_root, str(tmp_path / "killed")])
    first = tmp_path / "killed" / "blood_binary" / "flqmi" / "seed0.json"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    done = sorted((tmp_path / "killed").rglob("seed*.json"))
    assert 1 <= len(done) < 4  # stopped part-way
    for out in ("killed", "whole"):
        subprocess.run([sys.executable, "-c", script, data_root, str(tmp_path / out)], check=True, timeout=600)
    strip = lambda r: [{k: v for k, v in x.items() if not k.endswith("seconds")} for x in r["rounds"]]
    for path in sorted((tmp_path / "whole").rglob("seed*.json")):
        resumed = json.loads((tmp_path / "killed" / path.relative_to(tmp_path / "whole")).read_text())
        assert strip(resumed) == strip(json.loads(path.read_text())) and resumed["finished"]


def test_a_cpu_record_names_its_bf16_instructions_and_the_onednn_cap(monkeypatch):
    # bf16 records repeat only under equal oneDNN kernels, so a record says which could run
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    described = records.describe_device("cpu")
    assert described.startswith("cpu (") and described.endswith("ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16)")
    instructions = described[len("cpu ("):described.index(";")].split(", ")
    assert instructions[0] == records.torch.backends.cpu.get_cpu_capability().lower()  # avx2 and avx512 differ
    assert ("amx" in instructions) == records.torch.cpu._is_amx_tile_supported()
    assert ("avx512_bf16" in instructions) == records.torch.cpu._is_avx512_bf16_supported()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert records.describe_device("cpu").endswith("ONEDNN_MAX_CPU_ISA=unset)")


def _write_slowly(path):
    records.write_atomic(path, lambda tmp: (tmp.write_text("{"), __import__("time").sleep(60)))


def test_a_killed_writers_temporary_file_is_removed_on_the_next_start_and_a_live_ones_kept(tmp_path):
    """A writer killed mid-write leaves its temporary file; the next start removes it, but never the file of a
    writer still at work (this process's) or of a writer on another host (a grid's shared folder)."""
    import os
    import signal
    import time

    path = tmp_path / "exp" / "random" / "seed0.json"
    path.parent.mkdir(parents=True)
    writer = multiprocessing.get_context("spawn").Process(target=_write_slowly, args=(path,))
    writer.start()
    deadline = time.monotonic() + 60
    while not list(path.parent.glob(".*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    left = list(path.parent.glob(".*.tmp"))
    assert len(left) == 1 and not path.exists()
    live = records.temporary(path)  # a writer at work: this process
    other_host = path.parent / ".seed0.json.elsewhere-1.abcdefgh.tmp"
    other_host.write_text("{")
    assert records.remove_stale_temporaries(tmp_path) == left
    assert live.exists() and other_host.exists() and not left[0].exists()


def test_a_run_record_is_on_disk_after_every_round_and_continues_where_it_stopped(tmp_path):
    path = tmp_path / "exp" / "flqmi" / "seed0.json"
    run = records.RunRecord(path, {"a": 1}, [2], "cpu")
    assert not run.finished and not path.exists()  # nothing to say before the first round
    run.append({"round": 0})
    assert json.loads(path.read_text())["rounds"] == [{"round": 0}]
    again = records.RunRecord(path, {"a": 1}, [2], "cpu")  # a rerun continues the stored rounds
    assert again.rounds == [{"round": 0}] and not again.finished
    again.append({"round": 1})
    done = again.finish()
    assert done["finished"] and json.loads(path.read_text()) == json.loads(json.dumps(done))
    assert records.RunRecord(path, {"a": 1}, [2], "cpu").data == json.loads(path.read_text())  # returned as stored
    with pytest.raises(records.StaleRecordError, match="a: stored 1, asked 2"):
        records.RunRecord(path, {"a": 2}, [2], "cpu")
    in_memory = records.RunRecord(None, {"a": 1}, [2], "cpu")
    in_memory.append({"round": 0})
    assert in_memory.finish()["rounds"] == [{"round": 0}]


def test_the_record_layout_is_spelled_once(tmp_path):
    run = records.record_path(tmp_path, "retina_noisy", "entropy", 3)
    method = records.record_path(tmp_path, "retina_noisy", "coteaching", 3, phase1=True)
    assert run == tmp_path / "retina_noisy" / "entropy" / "seed3.json"
    assert method == tmp_path / "retina_noisy" / "phase1" / "coteaching" / "seed3.json"
    other = records.record_path(tmp_path, "breast_binary", "flmi", 0)
    for path in (run, method, other):
        records.write_json_atomic(path, {})
    assert records.record_paths(tmp_path) == [other, run]
    assert records.record_paths(tmp_path, "retina_noisy", phase1=True) == [method]
    assert records.record_paths(tmp_path, phase1=None) == sorted([run, method, other])
