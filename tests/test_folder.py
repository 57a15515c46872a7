"""load_folder: a folder of your own images plus a labels CSV, written here from real PneumoniaMNIST pixels."""
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinical_utils import data as D
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig, train
from exactness import exact
from medmnist_fixtures import write_medmnist_npz

N_IMAGES, N_LABELED = 30, 20
FORMATS = {3: ".jpg", 4: ".jpg", 5: ".jpeg", 6: ".tif", 7: ".tiff", 8: "16bit"}  # the rest PNG
FOLDERS = ("", "ward_a/", "ward_b/day1/")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """30 PneumoniaMNIST train images, classes alternating: uint8 (30, 28, 28), int labels, class names.

    The official file where MEDMNIST_ROOT holds it, else the fake set (same format), so the tests run anywhere."""
    root = os.environ.get("MEDMNIST_ROOT")
    if root and (Path(root) / "pneumoniamnist.npz").exists():
        data = D.load_medmnist("pneumoniamnist", root=root, download=False)
    else:
        root = tmp_path_factory.mktemp("npz")
        write_medmnist_npz(root, "pneumoniamnist", n_classes=2, channels=1, n=(60, 10, 10))
        data = D.load_medmnist("pneumoniamnist", root=root, download=False, verify=False)
    per_class = [np.flatnonzero(data.train.labels == c)[:N_IMAGES // 2] for c in (0, 1)]
    pick = np.stack(per_class, axis=1).reshape(-1)  # normal, pneumonia, normal, ...
    return data.train.images[pick, 0], data.train.labels[pick], data.class_names


def save(path: Path, pixels: np.ndarray, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "16bit":  # 16-bit grey far above 255: clipping would turn it white
        Image.fromarray(pixels.astype(np.uint16) * 100).save(path)
    elif kind in (".jpg", ".jpeg"):
        Image.fromarray(pixels).save(path, quality=95)
    else:
        Image.fromarray(pixels).save(path)


def write_folder(folder: Path, source, prefix=lambda i: FOLDERS[i % 3]) -> dict:
    """The 30 source images under `folder`; {relative path: (pixels, class name, kind)}. The first 20 are labeled."""
    images, labels, names = source
    files = {}
    for i in range(N_IMAGES):
        kind = FORMATS.get(i, ".png")
        rel = f"{prefix(i)}scan{i:02d}{'.png' if kind == '16bit' else kind}"
        save(folder / rel, images[i], kind)
        files[rel] = (images[i], names[labels[i]], kind, i)
    return files


def write_csv(path: Path, rows) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def labeled_rows(files) -> list[dict]:
    """CSV rows for the labeled images, in a shuffled order (the CSV's order must not matter)."""
    rows = [{"path": rel, "label": name} for rel, (_, name, _, i) in files.items() if i < N_LABELED]
    return [rows[k] for k in np.random.default_rng(5).permutation(len(rows))]


@pytest.fixture
def folder(tmp_path, source):
    root = tmp_path / "my_scans"
    files = write_folder(root, source)
    csv = write_csv(tmp_path / "labels.csv", labeled_rows(files))
    return root, csv, files


def check_pixels(images: np.ndarray, paths, files) -> None:
    """Every loaded image against the one written: PNG and TIFF exactly, JPEG within its loss, 16-bit by its max."""
    assert len(images) == len(paths)
    for image, rel in zip(images, paths):
        pixels, _, kind, _ = files[rel]
        if kind == "16bit":
            expected = np.rint(pixels * (255 / pixels.max()))
            np.testing.assert_allclose(image[0], expected, atol=1, err_msg=rel)
        elif kind in (".jpg", ".jpeg"):
            diff = np.abs(image[0].astype(int) - pixels)
            assert diff.mean() < 2 and diff.max() < 40, rel
        else:
            exact(image[0], pixels, err_msg=rel)


# ---------------------------------------------------------------- what comes back


def test_shapes_labels_pool_and_pixels(folder):
    root, csv, files = folder
    out = D.load_folder(root, csv)
    data = out.dataset
    assert isinstance(data, D.MedMNIST)
    assert (data.flag, data.size, data.n_channels, data.n_classes) == ("my_scans", 28, 1, 2)
    assert data.class_names == ("normal", "pneumonia")
    for name in D.SPLITS:
        split = data.split(name)
        assert split.images.dtype == np.uint8 and split.images.shape == (len(out.paths(name)), 1, 28, 28)
        assert split.labels.dtype == np.int64 and split.labels.shape == (len(out.paths(name)),)
        check_pixels(split.images, out.paths(name), files)
        # each label is the index of the name its CSV row gave
        assert [data.class_names[k] for k in split.labels] == [files[p][1] for p in out.paths(name)]
    labeled = out.train_paths + out.val_paths + out.test_paths
    assert sorted(labeled) == sorted(rel for rel, f in files.items() if f[3] < N_LABELED)
    assert len(set(labeled)) == N_LABELED
    # the pool is exactly the files without a CSV row, in sorted path order
    assert out.pool_paths == tuple(sorted(rel for rel, f in files.items() if f[3] >= N_LABELED))
    assert out.pool.dtype == np.uint8 and out.pool.shape == (N_IMAGES - N_LABELED, 1, 28, 28)
    check_pixels(out.pool, out.pool_paths, files)
    assert {files[p][2] for p in out.pool_paths + labeled} == {".png", ".jpg", ".jpeg", ".tif", ".tiff", "16bit"}
    assert any("/" in p for p in out.pool_paths) and any(p.count("/") == 2 for p in labeled)


def parts(out):
    return out.train_paths, out.val_paths, out.test_paths


def test_stratified_split_is_seeded(folder):
    root, csv, _ = folder
    splits = {seed: D.load_folder(root, csv, seed=seed) for seed in (0, 1, 2)}
    again = D.load_folder(root, csv, seed=0)
    assert parts(again) == parts(splits[0])
    assert parts(splits[1]) != parts(splits[0]) or parts(splits[2]) != parts(splits[0])
    for out in splits.values():
        data = out.dataset
        assert (len(data.train.labels), len(data.val.labels), len(data.test.labels)) == (14, 3, 3)
        for name in D.SPLITS:  # stratified: both classes in every split, even the 3-image ones
            assert set(data.split(name).labels) == {0, 1}
    no_val = D.load_folder(root, csv, val_fraction=0)
    assert len(no_val.val_paths) == 0 and no_val.dataset.val.images.shape == (0, 1, 28, 28)


def test_split_column_is_honoured(folder, tmp_path):
    root, _, files = folder
    rows = labeled_rows(files)
    for k, row in enumerate(rows):
        row["split"] = ("train", "train", "VAL", " test")[k % 4]  # case and spaces are forgiven
    out = D.load_folder(root, write_csv(tmp_path / "split.csv", rows), seed=3)
    want = {s: tuple(sorted(r["path"] for r in rows if r["split"].strip().lower() == s)) for s in D.SPLITS}
    assert (out.train_paths, out.val_paths, out.test_paths) == (want["train"], want["val"], want["test"])


def test_train_val_test_folders_are_honoured(tmp_path, source):
    # labeled images in train/, val/, test/; unlabeled ones in unlabeled/ and, without a CSV row, in train/
    folders = ("train/", "train/", "val/", "test/", "unlabeled/")
    files = write_folder(tmp_path / "scans", source, prefix=lambda i: folders[i % 5] if i < 25 else "train/")
    labeled = [rel for rel, f in files.items() if f[3] < N_LABELED]
    csv = write_csv(tmp_path / "labels.csv", [{"path": p, "label": files[p][1]} for p in labeled
                                              if not p.startswith("unlabeled/")])
    out = D.load_folder(tmp_path / "scans", csv)
    for name in D.SPLITS:
        assert out.paths(name) == tuple(sorted(p for p in labeled if p.startswith(f"{name}/"))), name
    assert out.pool_paths == tuple(sorted(p for p in files if p not in labeled or p.startswith("unlabeled/")))
    assert any(p.startswith("train/") for p in out.pool_paths)
    # a labeled image outside the three folders has no split to take
    rows = [{"path": p, "label": files[p][1]} for p in labeled]
    with pytest.raises(D.DataError, match=r"unlabeled/scan04\.jpg.*in none of them"):
        D.load_folder(tmp_path / "scans", write_csv(tmp_path / "all.csv", rows))


def test_resizes_to_64(folder):
    root, csv, files = folder
    out = D.load_folder(root, csv, size=64)
    assert out.dataset.size == 64
    assert out.dataset.train.images.shape[1:] == (1, 64, 64) and out.pool.shape == (10, 1, 64, 64)
    for image, rel in zip(out.pool, out.pool_paths):  # each image itself, resized whole (bicubic), not cropped
        up = np.asarray(Image.fromarray(files[rel][0]).resize((64, 64), Image.Resampling.BICUBIC))
        exact(image[0], up, err_msg=rel)


def test_rgb_output_and_majority_channels(folder, tmp_path, source):
    root, csv, files = folder
    out = D.load_folder(root, csv, channels=3)
    assert out.dataset.n_channels == 3 and out.pool.shape == (10, 3, 28, 28)
    for image, rel in zip(out.dataset.train.images, out.train_paths):
        if files[rel][2] in (".png", ".tif", ".tiff"):  # grey to RGB repeats the grey value
            for c in range(3):
                exact(image[c], files[rel][0], err_msg=rel)
    # channels=None follows most images: two RGB and one grey give RGB, and the other way round grey
    images = source[0]
    colour = np.stack([images[0], images[1], images[2]], axis=-1)
    for n_rgb, want in ((2, 3), (1, 1)):
        mixed = tmp_path / f"mixed{n_rgb}"
        mixed.mkdir()
        for i in range(3):
            Image.fromarray(colour if i < n_rgb else images[3]).save(mixed / f"{i}.png")
        got = D.load_folder(mixed)
        assert got.dataset.n_channels == want and got.pool.shape == (3, want, 28, 28)
        if want == 3:
            exact(got.pool[0], colour.transpose(2, 0, 1))
        else:  # colour to grey by Pillow's luma
            exact(got.pool[0, 0], np.asarray(Image.fromarray(colour).convert("L")))


def test_without_labels_everything_is_the_pool(folder):
    root, _, files = folder
    out = D.load_folder(root)
    assert out.pool_paths == tuple(sorted(files)) and out.pool.shape == (30, 1, 28, 28)
    assert out.dataset.class_names == () and out.dataset.train.images.shape == (0, 1, 28, 28)
    assert out.dataset.test.labels.shape == (0,)


def test_class_names_and_csv_paths(tmp_path, source):
    """Integer class names sort as numbers; CSV paths may be absolute inside the folder or use backslashes."""
    root = tmp_path / "scans"
    files = write_folder(root, source)
    names = ["10", "2", "1"]
    rows = [{"path": str(root / rel) if i % 2 else rel.replace("/", "\\"), "label": names[i % 3],
             "split": "train" if i % 4 else "test"} for rel, (_, _, _, i) in files.items() if i < 12]
    out = D.load_folder(root, write_csv(tmp_path / "labels.csv", rows))
    assert out.dataset.class_names == ("1", "2", "10")
    paths = {rel: i for rel, (_, _, _, i) in files.items()}
    for name in ("train", "test"):
        assert [out.dataset.class_names[k] for k in out.dataset.split(name).labels] == \
            [names[paths[p] % 3] for p in out.paths(name)]
    assert len(out.train_paths) + len(out.test_paths) == 12 and len(out.pool_paths) == 18


def test_plugs_into_the_training_engine(folder):
    root, csv, _ = folder
    data = D.load_folder(root, csv).dataset
    model = build_model("small_cnn", data.n_channels, data.n_classes, data.size)
    result = train(model, data.train.images, data.train.labels, TrainConfig(epochs=1, batch_size=8), device="cpu")
    assert result.epochs == 1 and 0 <= result.train_accuracy <= 1


# ---------------------------------------------------------------- errors for people


def test_arguments_and_folder_are_checked_first(tmp_path):
    with pytest.raises(D.DataError, match=r"size 32 .*\(28, 64, 128, 224\)"):
        D.load_folder(tmp_path, size=32)
    with pytest.raises(D.DataError, match="channels 2"):
        D.load_folder(tmp_path, channels=2)
    with pytest.raises(D.DataError, match="sum to less than 1"):
        D.load_folder(tmp_path, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(D.DataError, match=r"no_such_folder does not exist"):
        D.load_folder(tmp_path / "no_such_folder")
    (tmp_path / "notes.txt").write_text("no scans here")
    (tmp_path / ".hidden").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / ".hidden" / "x.png")
    with pytest.raises(D.DataError, match=rf"{tmp_path} holds no images"):
        D.load_folder(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "not an image"])
def test_unreadable_image_is_named(folder, damage):
    root, csv, _ = folder
    path = root / "ward_a" / "scan10.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"these are notes, not a scan")
    with pytest.raises(D.DataError, match=r"ward_a/scan10\.png cannot be read as an image"):
        D.load_folder(root, csv)


def test_multi_frame_tiff_is_named(folder):
    root, csv, files = folder
    frames = [Image.fromarray(files["scan00.png"][0]) for _ in range(3)]
    frames[0].save(root / "stack.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(D.DataError, match=r"stack\.tif holds 3 frames"):
        D.load_folder(root, csv)


def _bad_csv(tmp_path, rows, match, root=None):
    with pytest.raises(D.DataError, match=match):
        D.load_folder(root or tmp_path / "my_scans", write_csv(tmp_path / "bad.csv", rows))


def test_csv_rows_are_checked(folder, tmp_path):
    root, csv, files = folder
    rows = labeled_rows(files)
    _bad_csv(tmp_path, rows + [{"path": "ward_a/ghost.png", "label": "normal"}],
             r"bad\.csv line 22: ward_a/ghost\.png does not exist")
    _bad_csv(tmp_path, rows + [{"path": "./" + rows[0]["path"], "label": "normal"}],
             rf"line 22: {rows[0]['path']} is listed twice \(also on line 2\)")
    _bad_csv(tmp_path, rows + [{"path": "../labels.csv", "label": "normal"}], r"\.\./labels\.csv is outside")
    (root / "notes.txt").write_text("x")
    _bad_csv(tmp_path, rows + [{"path": "notes.txt", "label": "normal"}], r"notes\.txt is not an image")
    _bad_csv(tmp_path, rows + [{"path": "scan21.png", "label": ""}], r"line 22 has an empty label")
    _bad_csv(tmp_path, [{"file": r["path"], "class": r["label"]} for r in rows],
             r"bad\.csv has no path or label column \(its columns: file, class\)")
    _bad_csv(tmp_path, [dict(r, split="train") for r in rows[:-1]] + [dict(rows[-1], split="training")],
             rf"line 21: split 'training' of {rows[-1]['path']} is not one of train, val, test")
    with pytest.raises(D.DataError, match=r"labels CSV .*missing\.csv does not exist"):
        D.load_folder(root, tmp_path / "missing.csv")


@pytest.mark.parametrize("split_column", [False, True])
def test_a_class_spelled_two_ways_is_named(folder, tmp_path, split_column):
    """'Pneumonia' beside 'pneumonia' (or ' pneumonia') is one class written two ways, not a third class."""
    root, csv, files = folder
    rows = [dict(r, split="train") if split_column else r for r in labeled_rows(files)]
    first, later = [i for i, r in enumerate(rows) if r["label"] == "pneumonia"][:2]
    for spelling in ("Pneumonia", "pneumonia "):
        changed = [dict(r, label=spelling) if i == later else r for i, r in enumerate(rows)]
        _bad_csv(tmp_path, changed, rf"bad\.csv line {later + 2} spells class '{spelling}' and bad\.csv line "
                                    rf"{first + 2} spells it 'pneumonia'")


def test_a_link_to_an_image_outside_the_folder_is_refused(folder, tmp_path, source):
    """A link inside the folder to a file elsewhere would bring an outside image into train or the pool."""
    root, csv, files = folder
    outside = tmp_path / "elsewhere" / "other.png"
    save(outside, source[0][0], ".png")
    (root / "ward_a" / "link.png").symlink_to(outside)
    for labels in (None, csv):
        with pytest.raises(D.DataError, match=r"ward_a/link\.png is a link to .*elsewhere/other\.png, outside"):
            D.load_folder(root, labels)
    (root / "ward_a" / "link.png").unlink()
    (root / "ward_a" / "inside.png").symlink_to(root / next(iter(files)))  # a link within the folder is an image
    assert "ward_a/inside.png" in D.load_folder(root, csv).pool_paths


def test_too_few_of_a_class_for_the_stratified_split(folder, tmp_path):
    root, _, files = folder
    rows = labeled_rows(files)
    rows[0]["label"], rows[1]["label"] = "effusion", "effusion"
    _bad_csv(tmp_path, rows, r"class 'effusion' has 2, and each class needs at least 3\. Label more images of "
                             r"'effusion', or add a split column")
    D.load_folder(root, write_csv(tmp_path / "two.csv", rows), val_fraction=0)  # one cut needs only 2 of each
    rows[1]["label"] = "normal"
    _bad_csv(tmp_path, rows, r"class 'effusion' has 1")
    rows[0]["split"] = "train"  # a split column: the user chose, so one image of a class is fine
    for r in rows[1:]:
        r["split"] = "train"
    assert D.load_folder(root, write_csv(tmp_path / "ok.csv", rows)).dataset.n_classes == 3
    for r in rows:
        r["split"] = "test"
    _bad_csv(tmp_path, rows, r"none of the 20 labeled images is in the train split")


def test_dicom_without_pydicom_says_how_to_install(folder, monkeypatch):
    root, csv, _ = folder
    (root / "ct.dcm").write_bytes(b"\0" * 132)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom now raises ImportError
    with pytest.raises(D.DataError, match=r"ct\.dcm are DICOM files, and reading them needs pydicom: "
                                          r"pip install pydicom \(or pip install 'clinical-utils\[dicom\]'\)"):
        D.load_folder(root, csv)


def test_reads_dicom_through_its_rescale(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    stored = (np.arange(28 * 28).reshape(28, 28) % 700 + 50).astype("<u2")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = "-1", "1000"  # a negative slope: the rescale shows in the pixels
    ds.PixelData = stored.tobytes()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(tmp_path / "ct.dcm", enforce_file_format=True)
    else:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(tmp_path / "ct.dcm", write_like_original=False)
    out = D.load_folder(tmp_path)
    assert out.pool_paths == ("ct.dcm",) and out.pool.shape == (1, 1, 28, 28)
    value = 1000.0 - stored
    expected = np.rint((value - value.min()) * 255 / (value.max() - value.min()))
    exact(out.pool[0, 0], expected.astype(np.uint8))
