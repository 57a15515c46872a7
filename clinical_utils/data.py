"""MedMNIST loading, your own image folders (`load_folder`), and seeded class-imbalance scenarios.

Images are uint8 arrays shaped (N, C, H, W), labels int64 shaped (N,). Scenarios are index sets into
the official splits: the initial labeled set and the unlabeled pool come from `train`, the exemplar
set (the source of rare-class queries) from `val`, the test set from `test`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import medmnist
import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

from .records import file_digest

FLAGS_2D = (
    "pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
    "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist",
)
SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data request that cannot be met; the message says what to change."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


@dataclass(frozen=True)
class MedMNIST:
    """One MedMNIST dataset: its three official splits and the names of its classes."""

    flag: str
    size: int
    class_names: tuple[str, ...]
    train: Split
    val: Split
    test: Split

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_channels(self) -> int:
        return self.train.images.shape[1]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {SPLITS}")
        return getattr(self, name)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the .npz files: `root`, else $MEDMNIST_ROOT, else medmnist's default."""
    return Path(root or os.environ.get("MEDMNIST_ROOT") or medmnist.info.DEFAULT_ROOT).expanduser()


def file_name(flag: str, size: int = 28) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _check_flag(flag: str, size: int) -> None:
    if flag not in medmnist.INFO:
        raise DataError(f"unknown MedMNIST flag {flag!r}; the 2-D ones are: {', '.join(FLAGS_2D)}")
    if flag not in FLAGS_2D:
        raise DataError(f"{flag} is a 3-D volume set; this project works on the 2-D flags: {', '.join(FLAGS_2D)}")
    if medmnist.INFO[flag]["task"].startswith("multi-label"):
        raise DataError(
            f"{flag} is multi-label ({len(medmnist.INFO[flag]['label'])} findings per image, any number present); "
            "imbalance scenarios and per-class accuracy need exactly one label per image. "
            "Use a single-label flag such as pneumoniamnist, or build a binary task from one finding yourself."
        )
    if size not in SIZES:
        raise DataError(f"size {size} is not offered by MedMNIST; use one of {SIZES}")


def set_name(flag: str) -> str:
    """How medmnist names a flag's set ('PneumoniaMNIST'); the flag itself for a set it does not know."""
    return medmnist.INFO[flag]["python_class"] if flag in medmnist.INFO else flag


def class_names(flag: str) -> tuple[str, ...]:
    """The class names medmnist gives a flag, in label order; a bare number (RetinaMNIST's diabetic-retinopathy
    grades, '0'..'4') is named as the grade it is ('grade 0')."""
    labels = medmnist.INFO[flag]["label"]
    names = (labels[str(k)] for k in range(len(labels)))
    return tuple(f"grade {name}" if name.isdigit() else name for name in names)


def ensure_file(flag: str, size: int = 28, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The path of the flag's .npz in `data_root(root)`, downloading it through medmnist if absent and allowed.

    Raises DataError naming the file, the folder and the fix when it is absent and cannot be fetched.
    """
    _check_flag(flag, size)
    folder = data_root(root)
    path = folder / file_name(flag, size)
    if path.exists():
        return path
    problem = f"{path.name} is not in {folder}"
    if not download:
        raise DataError(f"{problem}. Set MEDMNIST_ROOT (or pass root=) to the folder that holds it, "
                        "or pass download=True with network access.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        getattr(medmnist, medmnist.INFO[flag]["python_class"])(split="train", root=str(folder), size=size,
                                                              download=True)
    except Exception as err:  # medmnist wraps every network failure in a bare RuntimeError
        raise DataError(f"{problem} and downloading it failed ({str(err).strip().splitlines()[0]}). "
                        "Set MEDMNIST_ROOT (or pass root=) to a folder that holds the file, "
                        "or run with network access so medmnist can download it.") from None
    return path


def load_medmnist(flag: str, size: int = 28, root: str | os.PathLike | None = None,
                  download: bool = True, verify: bool = True) -> MedMNIST:
    """Load a 2-D MedMNIST set through the `medmnist` package.

    The file is looked for in `data_root(root)`; if absent and `download` is true, medmnist downloads it.
    `verify` checks the file's MD5 against `medmnist.INFO` (turn it off only for hand-made fixtures).
    Grey images get a channel axis, so every set comes back as uint8 (N, C, H, W).
    """
    path = ensure_file(flag, size, root, download)
    folder = path.parent
    info = medmnist.INFO[flag]
    dataset_class = getattr(medmnist, info["python_class"])
    if verify:
        expected = info["MD5" if size == 28 else f"MD5_{size}"]
        found = file_digest(path, "md5")
        if found != expected:
            raise DataError(f"{path} is corrupt or incomplete: its MD5 is {found}, medmnist "
                            f"{medmnist.__version__} expects {expected}. Delete it and download it again.")
    splits = {}
    for name in SPLITS:
        ds = dataset_class(split=name, root=str(folder), size=size, download=False)
        images = np.asarray(ds.imgs, dtype=np.uint8)
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        splits[name] = Split(np.ascontiguousarray(images), np.asarray(ds.labels, dtype=np.int64).reshape(-1))
    return MedMNIST(flag=flag, size=size, class_names=class_names(flag), **splits)


# ----------------------------------------------------------------------------------------------
# Your own images: a folder of scans plus a CSV of the labels known so far

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")
# Pillow modes that hold one grey channel (the 16-bit ones are "I;16", "I;16B", ...); every other mode
# (RGB, RGBA, P, CMYK, ...) counts as colour
_GREY_MODES = ("1", "L", "LA", "La", "I", "F")


@dataclass(frozen=True)
class FolderData:
    """A folder of your own images, ready for the training engine and the loop.

    dataset: the labeled images as a MedMNIST (flag: the folder's name); its train/val/test images are uint8
    (N, C, size, size), labels int64 (N,) indexing dataset.class_names. pool: the unlabeled images, uint8
    (P, C, size, size). *_paths: each image's path relative to `root` (POSIX), one per row of its array.
    """

    root: Path
    dataset: MedMNIST
    pool: np.ndarray
    train_paths: tuple[str, ...]
    val_paths: tuple[str, ...]
    test_paths: tuple[str, ...]
    pool_paths: tuple[str, ...]

    def paths(self, name: str) -> tuple[str, ...]:
        """The paths of one split ("train", "val", "test") or of the "pool", in array order."""
        if name not in SPLITS + ("pool",):
            raise DataError(f"unknown split {name!r}; use one of {SPLITS + ('pool',)}")
        return getattr(self, f"{name}_paths")


def load_folder(root: str | os.PathLike, labels: str | os.PathLike | None = None, size: int = 28,
                channels: int | None = None, seed: int = 0, val_fraction: float = 0.15,
                test_fraction: float = 0.15) -> FolderData:
    """Load every PNG, JPEG, TIFF (and, with pydicom, DICOM) image under `root`, in sorted path order.

    Images are resized to size x size pixels (non-square ones are stretched) and made grey (channels=1) or
    RGB (3); None takes what most images are. 16-bit greys are scaled by their own maximum, DICOM pixels by
    min/max after the rescale slope/intercept. `labels`: a CSV with columns path (relative to root, or
    absolute inside it), label (a class name) and optionally split (train/val/test); images without a row
    form the unlabeled pool. Class names are sorted (numerically when all are integers) into indices
    0..K-1. Splits come from the split column, else from top-level train/, val/, test/ folders, else from
    a stratified split of the labeled images seeded by `seed`. Every problem raises DataError naming the
    file and the fix; the CSV and every image header are checked before any image is decoded.
    """
    if size not in SIZES:
        raise DataError(f"size {size} is not one the models take; use one of {SIZES}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels {channels!r} must be 1 (grey), 3 (RGB) or None (what most images are)")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must each be in [0, 1) "
                        "and sum to less than 1, leaving images to train on")
    given = Path(root).expanduser()
    if not given.is_dir():
        raise DataError(f"{given} {'is not a folder' if given.exists() else 'does not exist'}; "
                        "pass the folder that holds your images")
    root = given.resolve()
    files = _find_images(root)
    dicom = _pydicom([f for f in files if f.lower().endswith(".dcm")])
    rows, csv = ({}, None) if labels is None else (_read_labels(Path(labels).expanduser(), root, files), labels)
    class_names = _class_order({name for name, _ in rows.values()})
    labeled = [f for f in files if f in rows]
    code = {name: k for k, name in enumerate(class_names)}
    y = np.array([code[rows[f][0]] for f in labeled], dtype=np.int64)
    split = _assign_splits(root, labeled, rows, y, class_names, csv, seed, val_fraction, test_fraction)
    grey = [_probe(root / f, f, dicom) for f in files]
    if channels is None:  # ties go to RGB, which loses nothing
        channels = 1 if 2 * sum(grey) > len(grey) else 3
    images = np.stack([_decode(root / f, f, channels, size, dicom) for f in files])
    index = {f: i for i, f in enumerate(files)}

    def part(name):
        members = [j for j in range(len(labeled)) if split[j] == name]
        return (Split(images[[index[labeled[j]] for j in members]], y[members]),
                tuple(labeled[j] for j in members))

    (train, train_paths), (val, val_paths), (test, test_paths) = (part(s) for s in SPLITS)
    pool_paths = tuple(f for f in files if f not in rows)
    dataset = MedMNIST(flag=root.name, size=size, class_names=class_names, train=train, val=val, test=test)
    return FolderData(root, dataset, images[[index[f] for f in pool_paths]], train_paths, val_paths, test_paths,
                      pool_paths)


def _find_images(root: Path) -> list[str]:
    """Image paths under root, relative and sorted; hidden files and folders are skipped (macOS's '._x.png'
    copies and .ipynb_checkpoints are not images)."""
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for path in found:  # a link to a file elsewhere would bring an image from outside the folder into the set
        if not path.resolve().is_relative_to(root):
            raise DataError(f"{path} is a link to {path.resolve()}, outside {root}; load_folder reads only images "
                            "inside the folder: copy the image in, or remove the link")
    files = [p.relative_to(root).as_posix() for p in found]
    if not files:
        raise DataError(f"{root} holds no images: load_folder reads {', '.join(IMAGE_SUFFIXES)} files in it and its "
                        "subfolders. Point it at the folder with your scans, or convert them to PNG.")
    return files


def _pydicom(dicom_files: list[str]):
    """The pydicom module where there are DICOM files (else None); a DataError saying how to install it."""
    if not dicom_files:
        return None
    try:
        import pydicom
    except ImportError:
        more = f" and {len(dicom_files) - 1} more" if len(dicom_files) > 1 else ""
        raise DataError(f"{dicom_files[0]}{more} are DICOM files, and reading them needs pydicom: "
                        "pip install pydicom (or pip install 'clinical-utils[dicom]'), "
                        "or convert them to PNG") from None
    return pydicom


def _read_labels(csv: Path, root: Path, files: list[str]) -> dict[str, tuple[str, str | None]]:
    """{relative path: (class name, split or None)} from the labels CSV, every row checked."""
    if not csv.is_file():
        raise DataError(f"labels CSV {csv} does not exist; pass a CSV with columns path,label (and optionally "
                        "split), or labels=None to load every image unlabeled")
    try:  # every cell a string: class names such as "01" or "NA" stay as written
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"labels CSV {csv} cannot be read ({err}); write it as UTF-8 text whose first "
                        "line is path,label (and optionally split)") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise DataError(f"labels CSV {csv} has no {' or '.join(missing)} column (its columns: "
                        f"{', '.join(table.columns)}); its first line must be path,label (and optionally split)")
    known, rows, first, spelled = set(files), {}, {}, {}
    for i, row in enumerate(table.to_dict("records")):
        where = f"{csv.name} line {i + 2}"  # line 1 is the header
        raw, name = row["path"].strip(), row["label"].strip()
        if not raw or not name:
            raise DataError(f"{where} has an empty {'path' if not raw else 'label'}: give every row an image "
                            "path and a class name, or delete the row to leave the image in the unlabeled pool")
        other = spelled.setdefault(name.casefold(), (row["label"], where))
        if other[0] != row["label"]:  # "Pneumonia" beside "pneumonia" would become two classes
            raise DataError(f"{where} spells class {row['label']!r} and {other[1]} spells it {other[0]!r}: class "
                            "names that differ only in case or spaces are one class written two ways; write it one "
                            "way in every row (or name two different classes more differently)")
        rel = _relative(raw, root, where)
        if rel not in known:
            if not (root / rel).is_file():
                raise DataError(f"{where}: {raw} does not exist in {root}; fix the path (relative to that folder) "
                                "or delete the row")
            raise DataError(f"{where}: {rel} is not an image load_folder reads ({', '.join(IMAGE_SUFFIXES)}, "
                            "outside hidden folders); convert it or delete the row")
        if rel in rows:
            raise DataError(f"{where}: {rel} is listed twice (also on line {first[rel]}); keep one row per image")
        split = None
        if "split" in table.columns:
            split = row["split"].strip().lower()
            if split not in SPLITS:
                raise DataError(f"{where}: split {row['split']!r} of {rel} is not one of {', '.join(SPLITS)}; fix it, "
                                "or drop the split column to let load_folder split the labeled images")
        rows[rel], first[rel] = (name, split), i + 2
    return rows


def _relative(raw: str, root: Path, where: str) -> str:
    """A CSV path as a POSIX path relative to root; backslashes (CSVs written on Windows) become slashes."""
    full = Path(os.path.normpath(root / raw.replace("\\", "/")))  # an absolute path stays absolute
    full = full.parent.resolve() / full.name  # as root was resolved; the file itself may be a link
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        raise DataError(f"{where}: {raw} is outside {root}; CSV paths are relative to that folder, "
                        "or absolute inside it") from None


def _class_order(names) -> tuple[str, ...]:
    """Sorted class names; numerically when all are integers, so "2" comes before "10"."""
    try:
        return tuple(sorted(names, key=lambda n: (int(n), n)))
    except ValueError:
        return tuple(sorted(names))


def _assign_splits(root, labeled, rows, y, class_names, csv, seed, val_fraction, test_fraction) -> list[str]:
    """The split of each labeled image: the CSV's split column, else its top-level folder, else stratified."""
    if not labeled:
        return []
    if rows[labeled[0]][1] is not None:  # the CSV has a split column
        split = [rows[f][1] for f in labeled]
    elif folders := [s for s in SPLITS if (root / s).is_dir()]:
        split = [f.split("/", 1)[0] if "/" in f else None for f in labeled]
        outside = [f for f, s in zip(labeled, split) if s not in SPLITS]
        if outside:
            more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
            raise DataError(f"{root} has {', '.join(folders)} subfolders, so each labeled image takes its split from "
                            f"its top-level folder, but {outside[0]}{more} is in none of them. Move it into train/, "
                            f"val/ or test/, or add a split column to {csv}.")
    else:
        split = _stratified(y, class_names, csv, seed, val_fraction, test_fraction)
    if "train" not in split:
        raise DataError(f"none of the {len(labeled)} labeled images is in the train split; the model needs some to "
                        f"learn from: mark some train in {csv}'s split column or move some into train/")
    return split


def _stratified(y, class_names, csv, seed, val_fraction, test_fraction) -> list[str]:
    # two stratified cuts, test then val, so each class keeps its share in every split; sklearn's cut needs
    # at least 2 of a class in what it cuts, so a class needs 3 images when both val and test are asked for
    need = 1 + (val_fraction > 0) + (test_fraction > 0)
    counts = np.bincount(y, minlength=len(class_names))
    short = [c for c in range(len(class_names)) if counts[c] < need]
    if need > 1 and short:
        have = "; ".join(f"class {class_names[c]!r} has {counts[c]}" for c in short)
        which = ", ".join(repr(class_names[c]) for c in short)
        raise DataError(f"too few labeled images for a stratified train/val/test split: {have}, and each class "
                        f"needs at least {need}. Label more images of {which}, or add a split column "
                        f"(train/val/test) to {csv} to choose the splits yourself.")
    split = np.full(len(y), "train", dtype=object)
    rest = np.arange(len(y))
    try:
        if test_fraction > 0:
            rest, test = train_test_split(rest, test_size=test_fraction, stratify=y, random_state=seed)
            split[test] = "test"
        if val_fraction > 0:
            # a count, not val_fraction / (1 - test_fraction): both fractions are of all labeled images
            n_val = math.ceil(val_fraction * len(y))
            _, val = train_test_split(rest, test_size=n_val, stratify=y[rest], random_state=seed)
            split[val] = "val"
    except ValueError as err:  # e.g. a split smaller than the number of classes
        raise DataError(f"the stratified split of the {len(y)} labeled images failed: {err}. Label more images, "
                        f"change val_fraction/test_fraction, or add a split column (train/val/test) to {csv}."
                        ) from None
    return list(split)


def _unreadable(rel: str, err: Exception) -> str:
    return (f"{rel} cannot be read as an image ({type(err).__name__}: {err}). It may be truncated or not an "
            "image: export it again, or move it out of the folder.")


def _probe(path: Path, rel: str, dicom) -> bool:
    """Whether an image is grey, from its header alone; a DataError naming the file if it is not an image."""
    try:
        if path.suffix.lower() == ".dcm":
            ds = dicom.dcmread(path, stop_before_pixels=True)
            grey, frames = int(ds.get("SamplesPerPixel") or 1) == 1, int(ds.get("NumberOfFrames") or 1)
        else:
            with Image.open(path) as img:
                grey = img.mode in _GREY_MODES or img.mode.startswith("I;16")
                frames = getattr(img, "n_frames", 1)
    except Exception as err:  # Pillow and pydicom raise many kinds; the file's name is what helps
        raise DataError(_unreadable(rel, err)) from None
    if frames > 1:
        raise DataError(f"{rel} holds {frames} frames (a stack or multi-page file); load_folder reads single "
                        "images: save the frame you want as its own file")
    return grey


def _decode(path: Path, rel: str, channels: int, size: int, dicom) -> np.ndarray:
    """One image as uint8 (channels, size, size)."""
    try:
        if dicom is not None and path.suffix.lower() == ".dcm":
            pixels = _dicom_pixels(dicom.dcmread(path))
        else:
            with Image.open(path) as img:
                img.load()  # decodes now, so a truncated file fails here, with its name
                if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit grey: by its max, as clipping loses all
                    pixels = _scale_by_max(np.asarray(img))
                else:
                    pixels = np.asarray(img.convert("L" if img.mode in _GREY_MODES else "RGB"))
    except Exception as err:
        raise DataError(_unreadable(rel, err)) from None
    img = Image.fromarray(pixels).convert("L" if channels == 1 else "RGB")
    img = img.resize((size, size), Image.Resampling.BICUBIC)  # an exact copy when already size x size
    arr = np.asarray(img)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _scale_by_max(pixels: np.ndarray) -> np.ndarray:
    pixels = np.clip(pixels.astype(np.float64), 0, None)
    top = pixels.max()
    return np.rint(pixels * (255.0 / top) if top > 0 else pixels).astype(np.uint8)


def _dicom_pixels(ds) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3): stored values through the rescale slope/intercept (e.g. CT Hounsfield units),
    then min/max to 0..255."""
    pixels = ds.pixel_array.astype(np.float64)
    pixels = pixels * float(ds.get("RescaleSlope") or 1) + float(ds.get("RescaleIntercept") or 0)
    low, high = pixels.min(), pixels.max()
    pixels = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":  # low values are white in MONOCHROME1
        pixels = 255.0 - pixels
    return np.rint(pixels).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Scenario:
    """Index sets into one MedMNIST set, built by one of the scenario functions below.

    labeled, pool: indices into `train`; exemplars: into `val`; test: into `test`. All sorted, disjoint
    where they share a split. `counts` has one row per class and one column per set.
    """

    kind: str
    rare_classes: tuple[int, ...]
    labeled: np.ndarray
    pool: np.ndarray
    exemplars: np.ndarray
    test: np.ndarray
    counts: pd.DataFrame


def check_scenario(data: MedMNIST, scenario: Scenario) -> None:
    """A scenario's index sets must be sorted, unique and in range, and labeled and pool disjoint (a hand-built
    one too): an unsorted or repeated pool would label an image twice."""
    sizes = {"labeled": len(data.train.labels), "pool": len(data.train.labels),
             "exemplars": len(data.val.labels), "test": len(data.test.labels)}
    for name, n in sizes.items():
        idx = np.asarray(getattr(scenario, name))
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"scenario.{name} must be a 1-D integer index array, got {idx.dtype} {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise DataError(f"scenario.{name} has indices outside 0..{n - 1}")
        if np.any(np.diff(idx) <= 0):
            raise DataError(f"scenario.{name} must be sorted and without repeats: use np.unique(indices)")
    if len(np.intersect1d(scenario.labeled, scenario.pool)):
        raise DataError("scenario.labeled and scenario.pool share images: an image is either labeled or in the pool")


def _per_class(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=n_classes)


def _check_classes(classes, n_classes: int, what: str) -> tuple[int, ...]:
    classes = tuple(int(c) for c in classes)
    bad = [c for c in classes if not 0 <= c < n_classes]
    if bad:
        raise DataError(f"{what} {bad} do not exist: this set has classes 0..{n_classes - 1}")
    if len(set(classes)) != len(classes):
        raise DataError(f"{what} {list(classes)} name a class twice")
    return classes


def _draw(rng: np.random.Generator, labels: np.ndarray, available: np.ndarray, wanted: np.ndarray,
          class_names, what: str) -> np.ndarray:
    """Draw wanted[c] indices of class c from `available` (a boolean mask over `labels`), without replacement."""
    picked = []
    for c, n in enumerate(wanted):
        candidates = np.flatnonzero(available & (labels == c))
        if n > len(candidates):
            have = ", ".join(f"{class_names[k]}: {int((available & (labels == k)).sum())}"
                             for k in range(len(class_names)))
            raise DataError(f"the {what} needs {n} images of class {c} ({class_names[c]}) but only "
                            f"{len(candidates)} are available (available per class: {have}). "
                            "Ask for fewer images or a smaller imbalance.")
        picked.append(rng.choice(candidates, size=int(n), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _finish(kind, data: MedMNIST, rare, labeled, pool, exemplars_per_class, balanced_test, rng) -> Scenario:
    k = data.n_classes
    exemplars = _draw(rng, data.val.labels, np.ones(len(data.val.labels), bool),
                      np.full(k, exemplars_per_class), data.class_names, "exemplar set (from val)")
    if balanced_test:  # every class subsampled to the scarcest one's count
        test = _draw(rng, data.test.labels, np.ones(len(data.test.labels), bool),
                     np.full(k, _per_class(data.test.labels, k).min()), data.class_names, "balanced test set")
    else:
        test = np.arange(len(data.test.labels), dtype=np.int64)
    counts = pd.DataFrame(
        {
            "labeled": _per_class(data.train.labels[labeled], k),
            "pool": _per_class(data.train.labels[pool], k),
            "exemplars": _per_class(data.val.labels[exemplars], k),
            "test": _per_class(data.test.labels[test], k),
            "rare": [c in rare for c in range(k)],
        },
        index=pd.Index(list(data.class_names), name="class"),
    )
    return Scenario(kind, tuple(sorted(rare)), labeled, pool, exemplars, test, counts)


def _round_half_up(x):
    # not Python's round(), which rounds halves to even: TRUST's 1050 / 20 is 53, not 52
    return np.floor(np.asarray(x) + 0.5).astype(np.int64)


def _rare_size(n_common: int, ratio: float) -> int:
    return max(1, int(_round_half_up(n_common / ratio)))


def binary_imbalance(data: MedMNIST, rare_classes, ratio: float, labeled_per_class: int,
                     pool_per_class: int | None = None, exemplars_per_class: int = 5,
                     balanced_test: bool = False, seed: int = 0) -> Scenario:
    """Rare classes kept at 1/ratio of the common ones, in the labeled set and in the pool.

    Common classes get `labeled_per_class` labeled images and `pool_per_class` pool images (None: all
    that remain of the scarcest common class); each rare class gets n / ratio rounded half up, at least 1, of each.
    As in TRUST's `classimb` split (e.g. PneumoniaMNIST at 20:1: labeled 100 / 5, pool 1050 / 53).
    """
    k = data.n_classes
    rare = _check_classes(rare_classes, k, "rare_classes")
    if not rare or len(rare) == k:
        raise DataError(f"rare_classes must name at least one and at most {k - 1} of the {k} classes")
    if ratio < 1:
        raise DataError(f"ratio {ratio} must be >= 1 (common images per rare image)")
    rng = np.random.default_rng(seed)
    labels = data.train.labels
    is_rare = np.isin(np.arange(k), rare)
    wanted = np.where(is_rare, _rare_size(labeled_per_class, ratio), labeled_per_class)
    labeled = _draw(rng, labels, np.ones(len(labels), bool), wanted, data.class_names, "labeled set")
    remaining = np.ones(len(labels), bool)
    remaining[labeled] = False
    if pool_per_class is None:
        pool_per_class = int(_per_class(labels[remaining], k)[~is_rare].min())
    wanted = np.where(is_rare, _rare_size(pool_per_class, ratio), pool_per_class)
    pool = _draw(rng, labels, remaining, wanted, data.class_names, "unlabeled pool")
    return _finish("binary", data, rare, labeled, pool, exemplars_per_class, balanced_test, rng)


def long_tail_sizes(n_max: int, imbalance_factor: float, n_classes: int) -> np.ndarray:
    """n_r = n_max * IF^(-r / (C - 1)) for rank r = 0 (head) .. C-1 (tail), rounded half up, at least 1."""
    ranks = np.arange(n_classes)
    return np.maximum(1, _round_half_up(n_max * imbalance_factor ** (-ranks / (n_classes - 1))))


def long_tail(data: MedMNIST, imbalance_factor: float, labeled_max: int, pool_max: int | None = None,
              order=None, rare_classes=None, exemplars_per_class: int = 5, balanced_test: bool = False,
              seed: int = 0) -> Scenario:
    """Class sizes decay exponentially from head to tail, in the labeled set and in the pool.

    `order` lists the classes from head (rank 0) to tail; default: by train frequency, most frequent
    first, ties by class index: to make one class the tail, put it last. `pool_max` None takes the largest head
    size every class can satisfy. `rare_classes` default: the tail half of `order` (ranks >= C // 2); given, they
    must be no larger than any other class (a DataError says how to order them otherwise).
    """
    k = data.n_classes
    if imbalance_factor < 1:
        raise DataError(f"imbalance_factor {imbalance_factor} must be >= 1 (head size / tail size)")
    labels = data.train.labels
    freq = _per_class(labels, k)
    if order is None:
        order = sorted(range(k), key=lambda c: (-freq[c], c))
    order = _check_classes(order, k, "order")
    if sorted(order) != list(range(k)):
        raise DataError(f"order {list(order)} must list every class 0..{k - 1} exactly once")
    rank = np.empty(k, np.int64)
    rank[list(order)] = np.arange(k)
    rare = _check_classes(order[k // 2:] if rare_classes is None else rare_classes, k, "rare_classes")
    sizes = long_tail_sizes(labeled_max, imbalance_factor, k)[rank]
    common = [c for c in range(k) if c not in rare]
    if rare and common and sizes[list(rare)].max() > sizes[common].min():
        big = max(rare, key=lambda c: sizes[c])
        small = min(common, key=lambda c: sizes[c])
        raise DataError(f"rare_classes {list(rare)} contradict the class sizes: rare class {big} "
                        f"({data.class_names[big]}) gets {sizes[big]} labeled images, more than class {small} "
                        f"({data.class_names[small]}, {sizes[small]}), which is not rare. Put the rare classes "
                        f"at the tail with order= (head first, e.g. {[c for c in order if c not in rare] + list(rare)})"
                        " or leave rare_classes=None for the tail half of the order.")
    rng = np.random.default_rng(seed)
    labeled = _draw(rng, labels, np.ones(len(labels), bool), sizes, data.class_names, "labeled set")
    remaining = np.ones(len(labels), bool)
    remaining[labeled] = False
    if pool_max is None:
        decay = imbalance_factor ** (-rank / (k - 1))
        pool_max = int(np.floor((_per_class(labels[remaining], k) / decay).min()))
    pool = _draw(rng, labels, remaining, long_tail_sizes(pool_max, imbalance_factor, k)[rank],
                 data.class_names, "unlabeled pool")
    return _finish("longtail", data, rare, labeled, pool, exemplars_per_class, balanced_test, rng)


def natural(data: MedMNIST, labeled_size: int, pool_size: int | None = None, rare_classes=None,
            exemplars_per_class: int = 5, balanced_test: bool = False, seed: int = 0) -> Scenario:
    """The dataset's own class balance: a uniform random labeled set, the pool from the rest.

    `rare_classes` default: classes below half the uniform share (1 / 2C) of the train split.
    """
    k = data.n_classes
    labels = data.train.labels
    n = len(labels)
    pool_size = n - labeled_size if pool_size is None else pool_size
    if labeled_size < 1 or pool_size < 1 or labeled_size + pool_size > n:
        raise DataError(f"labeled_size {labeled_size} + pool_size {pool_size} must be positive and fit in "
                        f"the {n} train images")
    if rare_classes is None:
        rare_classes = np.flatnonzero(_per_class(labels, k) / n < 0.5 / k)
    rare = _check_classes(rare_classes, k, "rare_classes")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    labeled = np.sort(order[:labeled_size])
    pool = np.sort(order[labeled_size:labeled_size + pool_size])
    return _finish("natural", data, rare, labeled, pool, exemplars_per_class, balanced_test, rng)
