"""Your own images: a folder of scans (PNG, JPEG, TIFF, DICOM) plus a CSV of the labels known so far, as a
MedMNIST-shaped dataset and an unlabeled pool (`load_folder`)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

from .medmnist import SIZES, SPLITS, DataError, MedMNIST, Split

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


