"""Labeling your own images with a real expert: the labeling state on disk, each round's training and selection,
and the exports a team needs (labels CSV, file list, Label Studio tasks).

State lives in `state_dir` (default <folder>/.labeling/):
  project.json  what the project was opened with (labels CSV, size, channels, seed): reopening checks it
  log.jsonl     append-only, one JSON object per line, flushed and fsynced after every action. The truth:
                {"action": "round", "round", "strategy", "budget", "rare_classes", "picks": [paths],
                 "predictions": {path: [class, probability]}, "model_version", "validation", "parameters", "time",
                 "pool_predicted_rare", "warning" (a blind round's or a cold start's), "cold_start" (cold only)}
                {"action": "label" | "unsure" | "skip", "path", "label" (label only), "annotator", "time", "round",
                 "strategy", "model_version"}
                {"action": "undo", "annotator", "time", "round"}: withdraws the last label/unsure/skip still standing
                Every entry also carries "seq" (1, 2, ...) and "crc" (CRC-32 of the rest), so that reopening tells
                an action cut off by a kill (its line unfinished: dropped, with a warning) from a line damaged
                after it was synced (an error naming the line).
  labels.csv    path,label,split: the labels you started from plus every label given here, rewritten atomically
                after every action (an export of the log, to hand to other tools or to `load_folder`)
  round<r>.pt   round r's model weights (its model_version is "r<r>-<first 10 hex digits of their SHA-1>")
The current labels are the replay of the log, so closing the browser or killing the kernel loses at most the
click in flight, and reopening the project resumes exactly where the expert stopped.
"""
from __future__ import annotations

import base64
import getpass
import hashlib
import io
import json
import os
import time
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import filelock
import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..active.loop import EMBEDDINGS, STRATEGIES, round_seed, select
from ..data import FolderData, load_folder
from ..records import differing, remove_stale_temporaries, write_atomic, write_csv_atomic
from ..selection import CONDITIONAL, FUNCTIONS, typiclust_select
from ..selection.registry import pick
from ..training.models import build_model
from ..training.representation import PretrainConfig, pretrained_backbone, ssl_features
from ..training.train import TrainConfig, classification_metrics, predict, resolve_device, train

EXPERT_ACTIONS = ("label", "unsure", "skip")
# A few dozen labeled images: small batches (the authors' 20) and the authors' rule, until 99% training accuracy
TRAINING = TrainConfig(epochs=30, batch_size=20, target_train_accuracy=0.99)


class LabelingError(ValueError):
    """A labeling action or state that cannot be used; the message names the problem and the fix."""


ACTIONS = ("round", *EXPERT_ACTIONS, "undo")


def _checksum(entry: dict) -> str:
    """CRC-32 (8 hex digits) of an entry's canonical JSON, its checksum left out."""
    body = {k: v for k, v in entry.items() if k != "crc"}
    return f"{zlib.crc32(json.dumps(body, sort_keys=True).encode()):08x}"


def _sealed(entry: dict, seq: int) -> dict:
    """An entry as it is written: with its sequence number (1, 2, ...) and checksum."""
    entry = {**entry, "seq": seq}
    return {**entry, "crc": _checksum(entry)}


def _last_seq(entries: list[dict]) -> int:
    """The last entry's sequence number (an entry written before numbers: its position), 0 for none."""
    return entries[-1].get("seq", len(entries)) if entries else 0


def _checked_entry(line: bytes, previous: int) -> dict:
    """A log line as an action entry, whose sequence number must follow `previous` (the last entry's: its
    number, or for an entry written before numbers, its position); ValueError saying what is wrong with it. A gap
    is allowed: a damaged line deleted on purpose."""
    try:
        entry = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("not JSON" if line.strip() else "a blank line") from None
    if not isinstance(entry, dict) or entry.get("action") not in ACTIONS:
        raise ValueError(f"not an action entry: {line[:60].decode(errors='replace')!r}")
    if "seq" in entry or "crc" in entry:
        if not isinstance(entry.get("seq"), int) or entry["seq"] <= previous:
            raise ValueError(f"entry number {entry.get('seq')!r} after {previous}")
        if entry.get("crc") != _checksum(entry):
            raise ValueError("its checksum does not fit its content")
    return entry


class LabelingProject:
    """A folder of images being labeled, round by round (see the module docstring for what is on disk).

    folder: the images; labels: the CSV of labels known before (path,label[,split], see `load_folder`); the
    first round needs at least one labeled image of every class you will label. Images keep the splits
    `load_folder` gives them; every image labeled here joins train.
    """

    def __init__(self, folder, labels=None, state_dir=None, size: int = 28, channels: int | None = None,
                 seed: int = 0, annotator: str | None = None):
        self.data: FolderData = load_folder(folder, labels, size=size, channels=channels, seed=seed)
        self.state_dir = Path(state_dir) if state_dir is not None else self.data.root / ".labeling"
        self.annotator = annotator or getpass.getuser()
        self.seed = seed
        self.log_path = self.state_dir / "log.jsonl"
        self.labels_csv = self.state_dir / "labels.csv"
        # what the state depends on, not where the files are: the folder may move
        opened = {"labels_sha1": None if labels is None else hashlib.sha1(Path(labels).read_bytes()).hexdigest(),
                  "size": size, "channels": self.data.dataset.n_channels, "seed": seed}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.state_dir)  # a labels CSV or project.json whose writer was killed
        project = self.state_dir / "project.json"
        if project.exists():
            try:
                stored = json.loads(project.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise LabelingError(f"{project} is damaged ({err}); it holds what the project was opened with: "
                                    "restore it from a backup, or delete it to open the folder with the settings "
                                    "you give now") from None
            if stored != opened:
                raise LabelingError(f"{self.state_dir} belongs to a project opened with other settings "
                                    f"({'; '.join(differing(stored, opened))}); open it with those, or give "
                                    "another state_dir for a new project")
        else:
            write_atomic(project, lambda tmp: tmp.write_text(json.dumps(opened, indent=1) + "\n"))
        self._index = {p: i for i, p in enumerate(self.data.pool_paths)}
        self._lock = filelock.FileLock(self.state_dir / ".log.lock")
        with self._lock:
            self.log = self._read_log()
        gone = sorted({a["path"] for a in self.actions()} - set(self._index))
        if gone:
            raise LabelingError(f"the log in {self.state_dir} has actions on {len(gone)} image(s) no longer unlabeled "
                                f"in {self.data.root} (e.g. {gone[0]}): they were deleted, renamed or added to the "
                                "labels CSV. Put them back, or start a new project with another state_dir")
        if self.log:
            self._export()  # a kill between an action's fsync and its export left the CSV one action behind

    # ---- the log

    def _read_log(self) -> list[dict]:
        """Every entry of the log, each checked: a JSON action object whose sequence number follows the last and
        whose checksum fits (entries written before these existed carry neither). A last line cut off by a kill
        (no newline: the action in flight) is dropped with a warning and cut from the file, so the next action
        starts on a line of its own; any other damage, a blank line included, is an error naming the line."""
        if not self.log_path.exists():
            return []
        raw = self.log_path.read_bytes()
        lines = raw.split(b"\n")
        if lines[-1] == b"":  # the file ends with a newline: no last line in flight
            lines.pop()
        entries = []
        for number, line in enumerate(lines, 1):
            try:
                entries.append(_checked_entry(line, _last_seq(entries)))
            except ValueError as err:
                if number == len(lines) and not raw.endswith(b"\n"):  # cut by a kill while it was written
                    with open(self.log_path, "r+b") as f:
                        f.truncate(len(raw) - len(line))
                    warnings.warn(f"{self.log_path}: the last action (entry {_last_seq(entries) + 1}) was cut off "
                                  "while it was written, when the kernel stopped; it was not saved: do it again",
                                  stacklevel=3)
                    return entries
                raise LabelingError(f"{self.log_path} line {number} is damaged ({err}): an entry of the log, "
                                    "written and synced to disk whole, has changed since. Restore the file from a "
                                    "backup, or delete that line to lose that one action") from None
        if raw and not raw.endswith(b"\n"):  # a whole last entry whose newline was cut: end its line
            with open(self.log_path, "ab") as f:
                f.write(b"\n")
        return entries

    @contextmanager
    def _writing(self):
        """Hold the log (another project open on this state folder, a second kernel, waits) and see every entry
        written so far, so actions are decided on the whole log."""
        with self._lock:
            self.log = self._read_log()
            yield

    def _append(self, *entries: dict) -> list[dict]:
        """Append entries (inside `_writing`), fsync, then rewrite the labels CSV."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        entries = [_sealed({**entry, "time": stamp}, _last_seq(self.log) + i) for i, entry in enumerate(entries, 1)]
        with open(self.log_path, "ab") as f:
            f.write(b"".join((json.dumps(entry) + "\n").encode() for entry in entries))
            f.flush()
            os.fsync(f.fileno())
        self.log.extend(entries)
        self._export()
        return entries

    # ---- the state, replayed from the log

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.dataset.class_names

    def actions(self) -> list[dict]:
        """The expert's label/unsure/skip actions still standing (undone ones removed), in order."""
        standing = []
        for entry in self.log:
            if entry["action"] in EXPERT_ACTIONS:
                standing.append(entry)
            elif entry["action"] == "undo" and standing:
                standing.pop()
        return standing

    def labels(self) -> dict[str, str]:
        """{pool path: class name} given here (the latest label of each path)."""
        return {a["path"]: a["label"] for a in self.actions() if a["action"] == "label"}

    def unsure(self) -> set[str]:
        """Paths the expert could not label: never picked again."""
        done = self.labels()
        return {a["path"] for a in self.actions() if a["action"] == "unsure" and a["path"] not in done}

    def rounds(self) -> list[dict]:
        return [e for e in self.log if e["action"] == "round"]

    def current_round(self) -> dict | None:
        rounds = self.rounds()
        return rounds[-1] if rounds else None

    def statuses(self) -> dict[str, str]:
        """{path: its standing action in the current round: 'label:<class>', 'unsure' or 'skip'}."""
        current = self.current_round()
        if current is None:
            return {}
        return {a["path"]: f"label:{a['label']}" if a["action"] == "label" else a["action"]
                for a in self.actions() if a["round"] == current["round"]}

    def pending(self) -> list[str]:
        """The current round's picks with no standing action in this round yet, in pick order."""
        current, acted = self.current_round(), self.statuses()
        return [] if current is None else [p for p in current["picks"] if p not in acted]

    def status(self, path: str) -> str | None:
        """The standing action on `path` in the current round (see `statuses`), or None."""
        return self.statuses().get(path)

    # ---- the expert's actions

    def _entry(self, action: str, path: str, label: str | None = None) -> dict:
        if path not in self._index:
            raise LabelingError(f"{path!r} is not an unlabeled image of {self.data.root}; label only pool images "
                                f"(e.g. {self.data.pool_paths[:2]})")
        current = self.current_round() or {"round": None, "strategy": None, "model_version": None}
        entry = {"action": action, "path": path, "annotator": self.annotator, "round": current["round"],
                 "strategy": current["strategy"], "model_version": current["model_version"]}
        if action == "label":
            if label not in self.class_names:
                raise LabelingError(f"unknown class {label!r}; the classes are {list(self.class_names)}")
            entry["label"] = label
        return entry

    def _act(self, action: str, path: str, label: str | None = None) -> dict:
        with self._writing():
            return self._append(self._entry(action, path, label))[0]

    def label(self, path: str, label: str) -> dict:
        return self._act("label", path, label)

    def mark_unsure(self, path: str) -> dict:
        return self._act("unsure", path)

    def skip(self, path: str) -> dict:
        """Not now: the image stays in the pool and may be picked again."""
        return self._act("skip", path)

    def undo(self) -> dict | None:
        """Withdraw the last label/unsure/skip still standing in the current round (earlier rounds' labels trained
        its model: label such an image again to correct it); returns it, or None when there is nothing to undo."""
        with self._writing():
            standing = self.actions()
            current = self.current_round()
            if not standing or current is None or standing[-1]["round"] != current["round"]:
                return None
            self._append({"action": "undo", "annotator": self.annotator, "round": current["round"]})
            return standing[-1]

    # ---- training and selection

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Images uint8 (N, C, size, size) and labels (N,): the train split plus every pool image labeled here."""
        train = self.data.dataset.train
        given = self.labels()
        code = {name: k for k, name in enumerate(self.class_names)}
        paths = sorted(given)  # canonical order: equal labels give equal training sets
        images = self.data.pool[[self._index[p] for p in paths]] if paths else train.images[:0]
        return (np.concatenate([train.images, images]),
                np.concatenate([train.labels, np.array([code[given[p]] for p in paths], dtype=np.int64)]))

    def _rare(self, rare_classes) -> tuple[int, ...]:
        names = list(self.class_names)
        if isinstance(rare_classes, (str, int, np.integer)):  # one class, not the letters of its name
            rare_classes = [rare_classes]
        out = []
        for c in rare_classes:
            if isinstance(c, str) and c in names:
                out.append(names.index(c))
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < len(names):
                out.append(int(c))
            else:
                raise LabelingError(f"rare class {c!r} is not a class of this folder; the classes are {names}")
        return tuple(sorted(set(out)))

    def missing_classes(self, labels: np.ndarray | None = None) -> list[str]:
        """The classes without a labeled training image yet (among `labels`, default the training set's): while
        there are any, no model can be trained and `run_round` starts cold."""
        labels = self.training_set()[1] if labels is None else labels
        return [self.class_names[k] for k in range(len(self.class_names)) if not (labels == k).any()]

    def backbone(self, model: str, pretrain: PretrainConfig, device="auto") -> dict:
        """The backbone of `model` pretrained by `pretrain` on every image of the folder's train split and pool (no
        labels), cached in <state_dir>/pretrained/ by its key."""
        images = np.concatenate([self.data.dataset.train.images, self.data.pool])
        return pretrained_backbone(images, model, self.seed, pretrain, self.state_dir / "pretrained", device)

    def fit(self, model: str = "small_cnn", train_config: TrainConfig = TRAINING, device: str = "auto",
            seed: int | None = None, pretrain: PretrainConfig | None = None):
        """A model trained on everything labeled so far (from random weights, or from the backbone `pretrain`
        names), and its validation metrics (None when the folder has no validation images)."""
        images, labels = self.training_set()
        missing = self.missing_classes(labels)
        if missing:
            raise LabelingError(f"no training image of class(es) {missing}: label at least one of each in the "
                                "labels CSV, or run a cold-start round (run_round starts cold by itself)")
        if train_config.head_only and pretrain is None:
            raise LabelingError("head_only trains a linear head on a pretrained backbone: set pretrain too")
        device, seed = resolve_device(device), self.seed if seed is None else seed
        net = build_model(model, self.data.dataset.n_channels, len(self.class_names), self.data.dataset.size,
                          seed=seed, backbone=None if pretrain is None else self.backbone(model, pretrain, device))
        train(net, images, labels, train_config.for_device(device), device, seed)
        val = self.data.dataset.val
        metrics = classification_metrics(val.labels, predict(net, val.images, device)) if len(val.labels) else None
        return net, metrics

    def run_round(self, strategy: str, budget: int, rare_classes, model: str = "small_cnn",
                  train_config: TrainConfig = TRAINING, device: str = "auto",
                  embedding: str = "gradients", smi_params: dict | None = None,
                  pretrain: PretrainConfig | None = None) -> dict:
        """Train on everything labeled so far, embed the pool, pick `budget` images with `strategy` (an SMI
        function targeted at `rare_classes`, names or indices, or a baseline), and log the round; returns it.
        Picks of an earlier round left unlabeled go back to the pool.

        A round whose model predicts no pool image rare (blind: the authors' gradient embedding then points every
        pool image away from the rare queries) compares pool images at their likeliest rare label
        ("gradients_rare") instead, and says so in the entry's "warning". While a class has no labeled training
        image no model can be trained: the round starts cold (`cold_start_round`)."""
        if strategy not in STRATEGIES:
            raise LabelingError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
        if embedding not in EMBEDDINGS:
            raise LabelingError(f"unknown embedding {embedding!r}; choose one of {EMBEDDINGS}")
        rare = self._rare(rare_classes)
        if not rare and strategy in FUNCTIONS:
            raise LabelingError(f"{strategy} targets rare classes: name at least one in rare_classes")
        images, labels = self.training_set()
        if self.missing_classes(labels):
            return self.cold_start_round(strategy, budget, rare, model, pretrain or PretrainConfig(), device)
        available, number, seed, start = self._begin_round(budget)
        device = resolve_device(device)
        net, metrics = self.fit(model, train_config, device, seed, pretrain)
        queries = np.isin(labels, rare)  # the labeled rare training images; validation stays for scoring only
        pool_images = self.data.pool[[self._index[p] for p in available]]
        probs, feats = predict(net, pool_images, device, features=True)
        predicted_rare = int(np.isin(probs.argmax(1), rare).sum())
        warning, used = None, embedding
        if predicted_rare == 0 and rare:
            warning = (f"the model predicts no unlabeled image {' or '.join(self.class_names[c] for c in rare)}: "
                       "it has not learned the rare class yet.")
            if strategy in FUNCTIONS and embedding == "gradients":
                used = "gradients_rare"
                warning += (" The authors' gradient embedding would point every image away from the rare examples, "
                            "so this round compared images at their likeliest rare label (gradients_rare).")
            warnings.warn(warning, stacklevel=2)
        positions = select(strategy, net, probs, feats, images, labels, rare, images[queries], labels[queries],
                           budget, seed, device, smi_params, used)
        write_atomic(self.state_dir / f"round{number}.pt", lambda tmp: torch.save(net.state_dict(), tmp))
        return self._log_round(
            number, strategy, budget, rare, [available[i] for i in positions], start,
            predictions={available[i]: [self.class_names[int(probs[i].argmax())], round(float(probs[i].max()), 4)]
                         for i in positions},
            model_version=f"r{number}-{_digest(net.state_dict())}", validation=_plain(metrics),
            pool_predicted_rare=predicted_rare, warning=warning,
            parameters={"model": model, "train": train_config.for_device(device).as_record(), "embedding": used,
                        "smi_params": smi_params or {}, "seed": seed, "device": str(device),
                        **({} if pretrain is None else {"pretrain": asdict(pretrain)})})

    def cold_start_round(self, strategy: str, budget: int, rare_classes, model: str = "small_cnn",
                         pretrain: PretrainConfig = PretrainConfig(), device: str = "auto") -> dict:
        """A round with no trained model (a class has no labeled image yet): the folder's images are embedded by
        a backbone pretrained on them without labels (`backbone`), and an SMI `strategy` picks the images most
        like the labeled rare images (the queries; a conditional one given the labeled images of other classes);
        with no labeled rare image (or, for a conditional function, none of another class), or a baseline strategy,
        TypiClust picks typical images of uncovered clusters (random stays random). Logged like any round, with
        "cold_start": true and no predictions."""
        rare = self._rare(rare_classes)
        available, number, seed, start = self._begin_round(budget)
        state = self.backbone(model, pretrain, device)
        images, labels = self.training_set()
        pool = ssl_features(self.data.pool[[self._index[p] for p in available]], model, state, device)
        queries = np.isin(labels, rare)
        if strategy == "random":
            used, positions = "random", pick("random", SimpleNamespace(n=len(available)), budget, seed)
        elif strategy in FUNCTIONS and queries.any() and (strategy not in CONDITIONAL or (~queries).any()):
            used = strategy  # a conditional function conditions on the labeled images of the other classes
            inputs = SimpleNamespace(
                n=len(available), pool_embedding=pool, smi_params={},
                query_embedding=ssl_features(images[queries], model, state, device),
                private_embedding=ssl_features(images[~queries], model, state, device) if strategy in CONDITIONAL
                else None)
            positions = pick(strategy, inputs, budget, seed)
        else:
            used = "typiclust"
            positions = typiclust_select(pool, budget, ssl_features(images, model, state, device) if len(images)
                                         else None, seed)
        return self._log_round(
            number, strategy, budget, rare, [available[i] for i in positions], start, predictions={},
            model_version=f"ssl-{_digest(state)}", validation=None, cold_start=True, pool_predicted_rare=None,
            warning=(f"cold start: no labeled image of {', '.join(self.missing_classes(labels))} yet, so no model "
                     f"was trained; {used} picked on features learned from the images alone ({pretrain.method})."),
            parameters={"model": model, "embedding": "features", "selected_by": used, "seed": seed,
                        "device": str(resolve_device(device)), "pretrain": asdict(pretrain)})

    def _begin_round(self, budget: int) -> tuple[list[str], int, int, float]:
        """The pool paths neither labeled nor marked unsure (once `budget` is known to fit them), the round's
        number and seed, and its start time (perf_counter seconds)."""
        given, unsure = self.labels(), self.unsure()
        available = [p for p in self.data.pool_paths if p not in given and p not in unsure]
        if not 1 <= budget <= len(available):
            raise LabelingError(f"budget {budget} must be between 1 and the {len(available)} images still "
                                "unlabeled")
        number = len(self.rounds())
        return available, number, round_seed(self.seed, number), time.perf_counter()

    def _log_round(self, number: int, strategy: str, budget: int, rare: tuple[int, ...], picks: list[str],
                   start: float, **fields) -> dict:
        """Append round `number`'s entry (the fields every round has, then `fields`) unless another session
        logged that round meanwhile; returns the entry as logged."""
        entry = {"action": "round", "round": number, "strategy": strategy, "budget": budget,
                 "rare_classes": [self.class_names[c] for c in rare], "picks": picks,
                 "seconds": round(time.perf_counter() - start, 1), **fields}
        with self._writing():
            if len(self.rounds()) != number:
                raise LabelingError(f"another session ran round {number} of {self.state_dir} meanwhile; reopen the "
                                    "project to see it")
            return self._append(entry)[0]

    # ---- what changed

    def counts(self) -> pd.DataFrame:
        """Per class: images labeled before (the CSV's splits), labeled here, labeled here in the current round,
        and the total now."""
        before = self.data.dataset
        given, this_round = self.labels(), self.statuses()
        rows = []
        for k, name in enumerate(self.class_names):
            here = sum(1 for label in given.values() if label == name)
            rows.append({"class": name, "train": int((before.train.labels == k).sum()),
                         "val": int((before.val.labels == k).sum()), "test": int((before.test.labels == k).sum()),
                         "labeled here": here,
                         "this round": sum(1 for p, label in given.items() if label == name and p in this_round)})
        return pd.DataFrame(rows).set_index("class")

    # ---- exports and imports

    def _export(self) -> None:
        rows = [(p, self.class_names[y], split) for split in ("train", "val", "test")
                for p, y in zip(self.data.paths(split), getattr(self.data.dataset, split).labels)]
        rows += [(p, label, "train") for p, label in sorted(self.labels().items())]
        write_csv_atomic(self.labels_csv, ["path", "label", "split"], rows)

    def export_file_list(self, path, round_: int | None = None) -> Path:
        """A round's picks (default: the current one), one absolute path per line."""
        picks = self._round(round_)["picks"]
        write_atomic(Path(path), lambda tmp: tmp.write_text("".join(f"{self.data.root / p}\n" for p in picks)))
        return Path(path)

    def export_label_studio(self, path, round_: int | None = None,
                            url_prefix: str = "/data/local-files/?d=") -> Path:
        """A round's picks as Label Studio tasks JSON ([{"data": {"image": url}, "meta": {...}}]); url_prefix +
        the path relative to the folder is Label Studio's local-files URL when the folder is its document root."""
        entry = self._round(round_)
        tasks = [{"data": {"image": f"{url_prefix}{p}"},
                  "meta": {"path": p, "round": entry["round"], "strategy": entry["strategy"]}} for p in entry["picks"]]
        write_atomic(Path(path), lambda tmp: tmp.write_text(json.dumps(tasks, indent=1) + "\n"))
        return Path(path)

    def import_labels(self, csv_path) -> int:
        """Labels from a CSV of path,label (from another tool) logged as this annotator's labels; returns how many
        changed. Every row is checked before any is logged."""
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        if not {"path", "label"} <= set(frame.columns):
            raise LabelingError(f"{csv_path} needs the columns path,label; it has {list(frame.columns)}")
        for number, row in enumerate(frame.itertuples(), 2):
            if row.path not in self._index:
                raise LabelingError(f"{csv_path} line {number}: {row.path!r} is not an unlabeled image of "
                                    f"{self.data.root}")
            if row.label not in self.class_names:
                raise LabelingError(f"{csv_path} line {number}: unknown class {row.label!r}; the classes are "
                                    f"{list(self.class_names)}")
        with self._writing():
            given = self.labels()
            changed = [self._entry("label", p, label) for p, label in zip(frame["path"], frame["label"])
                       if given.get(p) != label]
            if changed:
                self._append(*changed)
        return len(changed)

    def _round(self, round_: int | None) -> dict:
        rounds = self.rounds()
        if not rounds:
            raise LabelingError("no round has run yet: run_round first")
        if round_ is None:
            return rounds[-1]
        if not 0 <= round_ < len(rounds):
            raise LabelingError(f"round {round_} has not run; rounds 0..{len(rounds) - 1} have")
        return rounds[round_]

    def preview(self, path: str, max_side: int = 384) -> str:
        """The image at `path` as a PNG data URL, from the original file (at most max_side pixels a side), or from
        the loaded array when Pillow cannot read the file (DICOM)."""
        if path not in self._index:
            raise LabelingError(f"{path!r} is not an unlabeled image of {self.data.root}")
        try:
            with Image.open(self.data.root / path) as img:
                img = img.convert("L" if self.data.dataset.n_channels == 1 else "RGB")
                img.thumbnail((max_side, max_side))
        except OSError:
            arr = self.data.pool[self._index[path]]
            img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
        if max(img.size) < 128:  # a 28-pixel image is too small to judge: enlarge it, keeping the pixels square
            img = img.resize((img.width * 128 // max(img.size), img.height * 128 // max(img.size)),
                             Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _digest(state: dict) -> str:
    """The first 10 hex digits of the SHA-1 of a state dict's tensors: a model's version in the log."""
    return hashlib.sha1(b"".join(t.detach().cpu().numpy().tobytes() for t in state.values())).hexdigest()[:10]


def _plain(value):
    """Metrics as JSON values: NaN as None, numpy numbers as Python ones."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return int(value) if isinstance(value, np.integer) else value


def validation_table(class_names, metrics: dict) -> pd.DataFrame:
    """Per-class validation accuracy, then balanced accuracy, one column per model: metrics {column: metrics
    (classification_metrics) or None (no validation images)}."""
    index = [*class_names, "balanced accuracy"]
    columns = {}
    for name, m in metrics.items():
        if m is None:
            raise LabelingError("this folder has no validation images: give some the split val in the labels CSV")
        columns[name] = [*m["per_class_accuracy"], m["balanced_accuracy"]]
    return pd.DataFrame(columns, index=pd.Index(index, name="class"))
