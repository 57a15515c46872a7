"""The labeling loop on a folder of images the test writes: state on disk after every action, resume, exports,
and the grid widget driven through its Python API and its front-end messages."""
import csv
import json

import pytest

from clinical_utils.data import load_folder
from clinical_utils.labeling import demo
from clinical_utils.labeling import LabelingError, LabelingProject, validation_table
from clinical_utils.labeling.widget import LabelingWidget
from clinical_utils.training.train import TrainConfig

FAST = TrainConfig(epochs=2, batch_size=8, precision="fp32")


def csv_labels(project) -> dict:
    with open(project.labels_csv) as f:
        return {row["path"]: row["label"] for row in csv.DictReader(f) if row["path"].startswith("pool/")}


def test_labels_reach_the_csv_after_every_click_and_undo_withdraws_them(folder):
    root, labels, truth = folder
    project = LabelingProject(root, labels, annotator="dr_a")
    round_ = project.run_round("random", 5, ["lesion"], train_config=FAST)
    assert round_["round"] == 0 and len(round_["picks"]) == 5 and round_["model_version"].startswith("r0-")
    assert (project.state_dir / "round0.pt").exists() and set(round_["predictions"]) == set(round_["picks"])
    widget = LabelingWidget(project)
    assert widget.progress == "0 of 5 labeled" and widget.current == 0
    assert all(item["prediction"] is None for item in widget.items)  # the model's guess only on request
    first = widget.items[0]["path"]
    seen = []
    widget.on_submit(lambda path, label: seen.append((path, label)))
    widget.label(truth[first])
    assert csv_labels(project) == {first: truth[first]} and seen == [(first, truth[first])]
    assert widget.progress == "1 of 5 labeled" and widget.current == 1
    second = widget.items[1]["path"]
    widget.skip()
    widget.mark_unsure()
    undone = []
    widget.on_undo(undone.append)
    assert widget.progress == "1 of 5 labeled, 2 set aside"
    widget.undo()  # withdraws "unsure" on the third pick, which becomes current again
    assert undone[0]["action"] == "unsure" and widget.current == 2
    assert project.status(second) == "skip" and csv_labels(project) == {first: truth[first]}
    widget.undo()
    widget.undo()
    assert csv_labels(project) == {} and widget.progress == "0 of 5 labeled" and widget.current == 0
    widget._on_front_end(widget, {"action": "undo"}, [])
    assert widget.message == "nothing to undo in this round"
    log = [json.loads(line) for line in project.log_path.read_text().splitlines()]
    assert [e["action"] for e in log] == ["round", "label", "skip", "unsure", "undo", "undo", "undo"]
    assert all(e["annotator"] == "dr_a" for e in log[1:]) and log[1]["model_version"] == round_["model_version"]
    widget.show_predictions = True
    assert all(item["prediction"] for item in widget.items)


def test_the_front_end_messages_act_and_errors_show_in_the_grid(folder):
    root, labels, truth = folder
    project = LabelingProject(root, labels)
    project.run_round("entropy", 3, ["lesion"], train_config=FAST)
    widget = LabelingWidget(project)
    widget._on_front_end(widget, {"action": "select", "index": 2}, [])
    widget._on_front_end(widget, {"action": "label", "label": "lesion"}, [])
    assert project.labels() == {widget.items[2]["path"]: "lesion"} and widget.message == ""
    widget._on_front_end(widget, {"action": "label", "label": "tumour"}, [])
    assert "unknown class 'tumour'" in widget.message and len(project.labels()) == 1
    # what a saved notebook keeps: a repr that says what the grid held, and a picture of the round
    assert repr(widget).startswith("labeling grid, round 0: 1 of 3 labeled")
    figure = widget.picture(columns=2)
    titles = [ax.get_title() for ax in figure.axes if ax.get_images()]
    assert titles == ["?", "?", "lesion"] and len(figure.axes) == 4  # 2 x 2, the spare one empty


def test_reopening_resumes_where_the_expert_stopped(folder):
    root, labels, truth = folder
    project = LabelingProject(root, labels)
    picks = project.run_round("random", 4, ["lesion"], train_config=FAST)["picks"]
    project.label(picks[0], truth[picks[0]])
    project.skip(picks[1])
    again = LabelingProject(root, labels)  # a new kernel, the same folder
    assert again.pending() == picks[2:] and again.labels() == project.labels()
    assert LabelingWidget(again).current == 2
    for path in again.pending():
        again.label(path, truth[path])
    assert again.pending() == []
    second = again.run_round("random", 4, ["lesion"], train_config=FAST)
    assert second["round"] == 1 and picks[1] in set(again.data.pool_paths) - set(again.labels())  # skipped: back
    images, y = again.training_set()
    assert len(y) == 9 + 3  # the train split and the three labeled picks
    assert again.undo() is None  # the last round's labels trained this round's model: not undone from here
    unsure = next(p for p in second["picks"])
    again.mark_unsure(unsure)
    third = again.run_round("random", 20, "lesion", train_config=FAST)  # one class, by name
    assert unsure not in third["picks"]  # unsure: never asked again


def test_an_action_cut_off_by_a_kill_is_dropped_and_damage_elsewhere_is_named(folder):
    root, labels, truth = folder
    project = LabelingProject(root, labels)
    picks = project.run_round("random", 3, ["lesion"], train_config=FAST)["picks"]
    project.label(picks[0], truth[picks[0]])
    with open(project.log_path, "ab") as f:
        f.write(b'{"action": "label", "path": "pool/sc')  # the click in flight when the kernel died
    with pytest.warns(UserWarning, match="cut off while it was written"):
        again = LabelingProject(root, labels)
    assert again.labels() == {picks[0]: truth[picks[0]]}
    again.label(picks[1], truth[picks[1]])  # starts on a line of its own
    assert len(LabelingProject(root, labels).labels()) == 2
    with open(again.log_path, "rb+") as f:  # a whole last entry whose newline was cut
        f.truncate(f.seek(0, 2) - 1)
    third = LabelingProject(root, labels)
    third.label(picks[2], truth[picks[2]])
    assert len(LabelingProject(root, labels).labels()) == 3
    lines = again.log_path.read_text().splitlines()
    again.log_path.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(LabelingError, match="line 2 is damaged"):
        LabelingProject(root, labels)


def test_two_sessions_on_one_folder_see_each_others_actions(folder):
    root, labels, truth = folder
    first, second = LabelingProject(root, labels), LabelingProject(root, labels)  # e.g. a stale widget's kernel
    picks = first.run_round("random", 3, ["lesion"], train_config=FAST)["picks"]
    second.label(picks[0], truth[picks[0]])  # second had not seen the round: it reads the log first
    assert second.labels() == {picks[0]: truth[picks[0]]} and second.log[1]["round"] == 0
    first.label(picks[1], truth[picks[1]])
    assert first.labels() == {p: truth[p] for p in picks[:2]} and csv_labels(second) == first.labels()
    assert second.undo()["path"] == picks[1]  # the last action on disk, whoever made it
    assert LabelingProject(root, labels).labels() == {picks[0]: truth[picks[0]]}


def test_bad_input_is_named(folder, tmp_path):
    root, labels, truth = folder
    project = LabelingProject(root, labels)
    with pytest.raises(LabelingError, match="no round has run yet"):
        project.export_file_list(tmp_path / "picks.txt")
    with pytest.raises(LabelingError, match="unknown strategy 'fastest'"):
        project.run_round("fastest", 3, ["lesion"])
    with pytest.raises(LabelingError, match="rare class 'tumour' is not a class"):
        project.run_round("flqmi", 3, ["tumour"])
    with pytest.raises(LabelingError, match="budget 31 must be between 1 and the 30"):
        project.run_round("random", 31, ["lesion"])
    with pytest.raises(LabelingError, match="targets rare classes"):
        project.run_round("flqmi", 3, [])
    with pytest.raises(LabelingError, match="not an unlabeled image"):
        project.label("train_0.png", "clear")
    with pytest.raises(LabelingError, match="unknown class 'tumour'"):
        project.label("pool/scan_00.png", "tumour")
    with pytest.raises(LabelingError, match="size: stored 28, asked 64"):
        LabelingProject(root, labels, size=64)
    with pytest.raises(LabelingError, match="unknown embedding 'pixels'"):
        project.run_round("flqmi", 3, ["lesion"], embedding="pixels")
    project.run_round("random", 3, ["lesion"], train_config=FAST)
    project.label(project.pending()[0], "clear")
    (root / next(iter(project.labels()))).unlink()  # a labeled image deleted meanwhile
    with pytest.raises(LabelingError, match="no longer unlabeled"):
        LabelingProject(root, labels)
    assert LabelingProject(root, labels, size=64, state_dir=tmp_path / "other").labels() == {}


def test_exports_and_imports(folder, tmp_path):
    root, labels, truth = folder
    project = LabelingProject(root, labels)
    picks = project.run_round("flqmi", 5, ["lesion"], train_config=FAST)["picks"]
    listed = project.export_file_list(tmp_path / "picks.txt").read_text().splitlines()
    assert listed == [str(root.resolve() / p) for p in picks]
    tasks = json.loads(project.export_label_studio(tmp_path / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [f"/data/local-files/?d={p}" for p in picks]
    assert tasks[0]["meta"] == {"path": picks[0], "round": 0, "strategy": "flqmi"}
    other_tool = tmp_path / "from_label_studio.csv"
    other_tool.write_text("path,label\n" + "".join(f"{p},{truth[p]}\n" for p in picks))
    assert project.import_labels(other_tool) == 5 and project.import_labels(other_tool) == 0
    assert project.pending() == [] and csv_labels(project) == {p: truth[p] for p in picks}
    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,label\n{picks[0]},clear\npool/none.png,clear\n")
    with pytest.raises(LabelingError, match="line 3: 'pool/none.png' is not an unlabeled image"):
        project.import_labels(bad)
    assert project.labels()[picks[0]] == truth[picks[0]]  # checked before any row was logged
    # the exported CSV is a labels CSV again: the same splits, the picks in train
    reloaded = load_folder(root, project.labels_csv)
    assert len(reloaded.train_paths) == 9 + 5 and reloaded.val_paths == project.data.val_paths
    _, metrics = project.fit(train_config=FAST)
    table = validation_table(project.class_names, {"after": metrics})
    assert list(table.index) == ["clear", "lesion", "balanced accuracy"]


def test_the_demo_folder_is_pneumonia_scans_with_a_few_labels(tmp_path, real_root):
    folder = demo.write_pneumonia_folder(tmp_path / "demo", pool_normal=19, pool_pneumonia=1, train_normal=4,
                                         train_pneumonia=2, val_per_class=2, root=real_root)
    data = load_folder(folder, folder / "labels.csv")
    assert data.dataset.class_names == ("normal", "pneumonia") and len(data.pool_paths) == 20
    answers = dict(csv.reader(open(demo.answers_path(folder))))
    assert sorted(answers) == sorted([*data.pool_paths, "path"]) and list(answers.values()).count("pneumonia") == 1


def test_every_damage_to_the_log_is_named_and_an_action_cut_by_a_kill_is_told_apart(folder):
    """Entries carry a sequence number and a checksum: a line changed after it was synced (a stray value, spaces
    over an action, an edited path) is an error naming the line; an unfinished last line is the action a kill cut
    off, dropped with a warning that says so."""
    root, labels, truth = folder
    project = LabelingProject(root, labels)
    picks = project.run_round("random", 3, ["lesion"], train_config=FAST)["picks"]
    project.label(picks[0], truth[picks[0]])
    project.mark_unsure(picks[1])
    good = project.log_path.read_bytes()
    lines = good.split(b"\n")[:-1]
    edited = lines[2].replace(picks[1].encode(), picks[2].encode())
    for damaged, message in ((good + b"42\n", "line 4 is damaged \\(not an action entry"),
                             (b"\n".join([*lines[:2], b" " * len(lines[2])]) + b"\n", "line 3 is damaged \\(a blank"),
                             (b"\n".join([*lines[:2], edited]) + b"\n", "line 3 is damaged \\(its checksum"),
                             (b"\n".join([*lines[:2], lines[1]]) + b"\n", "line 3 is damaged \\(entry number 2 after")):
        project.log_path.write_bytes(damaged)
        with pytest.raises(LabelingError, match=message):
            LabelingProject(root, labels)
    project.log_path.write_bytes(b"\n".join([lines[0], lines[2]]) + b"\n")  # as the message says: line deleted
    deleted = LabelingProject(root, labels)
    assert deleted.labels() == {} and deleted.status(picks[1]) == "unsure"
    deleted.label(picks[0], truth[picks[0]])  # numbered after the last entry, past the gap
    assert LabelingProject(root, labels).log[-1]["seq"] == 4
    project.log_path.write_bytes(good[:-20])  # the unsure, cut while it was written
    with pytest.warns(UserWarning, match="the last action \\(entry 3\\) was cut off"):
        again = LabelingProject(root, labels)
    assert again.labels() == {picks[0]: truth[picks[0]]} and again.status(picks[1]) is None
    assert project.log_path.read_bytes() == b"\n".join(lines[:2]) + b"\n"
    (project.state_dir / "project.json").write_text('{"labels_sha1": ')
    with pytest.raises(LabelingError, match="project.json is damaged"):
        LabelingProject(root, labels)


def test_a_blind_round_warns_and_compares_images_at_their_likeliest_rare_label(folder):
    """A model that calls no pool image rare (one lesion among six clear scans, every scan alike: nothing to learn
    but the prior) would, with the authors' gradient embedding, point every pool image away from the rare examples:
    the round says so and compares them at their likeliest rare label instead."""
    import numpy as np
    from PIL import Image

    root, labels, _ = folder
    rng = np.random.default_rng(1)
    for path in root.rglob("*.png"):
        Image.fromarray(rng.normal(60, 20, (28, 28)).clip(0, 255).astype(np.uint8)).save(path)
    rows = list(csv.reader(open(labels)))
    keep = [rows[0], *[r for r in rows[1:] if r[2] != "train" or r[1] == "clear" or r[0] == "train_6.png"]]
    with open(labels, "w", newline="") as f:
        csv.writer(f).writerows(keep)
    project = LabelingProject(root, labels)
    with pytest.warns(UserWarning, match="predicts no unlabeled image lesion"):
        entry = project.run_round("flqmi", 5, ["lesion"], train_config=TrainConfig(epochs=10, batch_size=4,
                                                                                     precision="fp32"),
                                  embedding="gradients")
    assert entry["pool_predicted_rare"] == 0 and "gradients_rare" in entry["warning"]
    assert entry["parameters"]["embedding"] == "gradients_rare"


def test_with_only_the_rare_exemplars_labeled_the_first_round_starts_cold(folder):
    """No clear scan labeled for training (only in val): no model can be trained, so the round picks on
    self-supervised features with the lesion exemplars as queries (random picks 1.6 lesions of 8 on average
    here); once a clear scan is labeled the next round trains."""
    from clinical_utils.training.representation import PretrainConfig

    root, labels, truth = folder
    rows = list(csv.reader(open(labels)))
    with open(labels, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *[r for r in rows[1:] if r[1] == "lesion" or r[2] == "val"]])
    project = LabelingProject(root, labels)
    assert project.missing_classes() == ["clear"]
    with pytest.raises(LabelingError, match="cold-start round"):
        project.fit()
    entry = project.run_round("flqmi", 8, ["lesion"], pretrain=PretrainConfig(epochs=2, batch_size=16))
    assert entry["cold_start"] and entry["model_version"].startswith("ssl-") and "cold start" in entry["warning"]
    assert len(set(entry["picks"])) == 8 and sum(truth[p] == "lesion" for p in entry["picks"]) >= 4
    assert len(list((project.state_dir / "pretrained").glob("*.pt"))) == 1
    for path in entry["picks"]:
        project.label(path, truth[path])
    assert not project.missing_classes()
    second = project.run_round("random", 3, ["lesion"], train_config=FAST)
    assert not second.get("cold_start") and second["model_version"].startswith("r1-")
