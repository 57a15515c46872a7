import medmnist
import numpy as np
import pytest

from clinical_utils import data as D
from exactness import exact
from medmnist_fixtures import write_medmnist_npz

# Train label counts of the official offline files (../shared/medmnist/README.md).
OFFLINE_TRAIN_COUNTS = {
    "breastmnist": [147, 399],
    "pneumoniamnist": [1214, 3494],
    "retinamnist": [486, 128, 206, 194, 66],
}


# ---------------------------------------------------------------- loading


def test_loads_rgb_multiclass_and_grey_binary_as_nchw(fixture_root):
    blood = D.load_medmnist("bloodmnist", root=fixture_root, verify=False)
    assert blood.train.images.shape == (400, 3, 28, 28)
    assert blood.train.images.dtype == np.uint8
    assert blood.train.labels.shape == (400,) and blood.train.labels.dtype == np.int64
    assert blood.class_names == tuple(medmnist.INFO["bloodmnist"]["label"][str(k)] for k in range(8))
    assert blood.n_classes == 8 and blood.n_channels == 3
    pneu = D.load_medmnist("pneumoniamnist", root=fixture_root, verify=False)
    assert pneu.val.images.shape == (60, 1, 28, 28)
    assert pneu.class_names == ("normal", "pneumonia")
    # pixels are the file's, moved channel-first, not rescaled
    raw = np.load(fixture_root / "bloodmnist.npz")
    exact(blood.test.images, raw["test_images"].transpose(0, 3, 1, 2))
    exact(blood.test.labels, raw["test_labels"][:, 0])


def test_larger_sizes_read_their_own_file(fixture_root):
    write_medmnist_npz(fixture_root, "dermamnist", n_classes=7, channels=3, size=64, n=(20, 10, 10))
    derma = D.load_medmnist("dermamnist", size=64, root=fixture_root, verify=False)
    assert derma.train.images.shape == (20, 3, 64, 64)
    assert derma.size == 64


def test_root_comes_from_environment(fixture_root, monkeypatch):
    monkeypatch.setenv("MEDMNIST_ROOT", str(fixture_root))
    assert D.data_root() == fixture_root
    assert D.load_medmnist("pneumoniamnist", verify=False).train.images.shape[0] == 300
    assert D.data_root("/elsewhere") != fixture_root  # an explicit root wins


def test_missing_file_without_download_names_file_folder_and_fix(tmp_path):
    with pytest.raises(D.DataError) as err:
        D.load_medmnist("octmnist", root=tmp_path, download=False)
    message = str(err.value)
    assert "octmnist.npz" in message and str(tmp_path) in message and "MEDMNIST_ROOT" in message


def test_failed_download_is_reported_with_the_fix(tmp_path, monkeypatch):
    # A proxy on a closed local port makes medmnist's real download fail at once, with or without internet.
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(D.DataError) as err:
        D.load_medmnist("pathmnist", root=tmp_path, download=True)
    message = str(err.value)
    assert "pathmnist.npz" in message and "downloading it failed" in message and "network" in message
    assert not (tmp_path / "pathmnist.npz").exists()


def test_checksum_mismatch_is_an_error(fixture_root):
    with pytest.raises(D.DataError, match="MD5"):
        D.load_medmnist("bloodmnist", root=fixture_root)  # a fixture is not the official file


@pytest.mark.parametrize("flag, fragment", [
    ("chestmnist", "multi-label"),
    ("organmnist3d", "3-D"),
    ("cifar10", "unknown MedMNIST flag"),
])
def test_unsupported_flags_are_rejected_clearly(flag, fragment, tmp_path):
    with pytest.raises(D.DataError, match=fragment):
        D.load_medmnist(flag, root=tmp_path)


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(D.DataError, match="size 32"):
        D.load_medmnist("pathmnist", size=32, root=tmp_path)


def test_every_2d_single_label_flag_is_accepted():
    for flag in D.FLAGS_2D:
        if flag != "chestmnist":
            D.medmnist._check_flag(flag, 28)


# ---------------------------------------------------------------- scenarios on fixtures


@pytest.fixture
def blood(fixture_root):
    return D.load_medmnist("bloodmnist", root=fixture_root, verify=False)


def _assert_consistent(s: D.Scenario, data: D.MedMNIST):
    assert len(np.intersect1d(s.labeled, s.pool)) == 0
    for idx in (s.labeled, s.pool, s.exemplars, s.test):
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    k = data.n_classes
    exact(s.counts["labeled"], np.bincount(data.train.labels[s.labeled], minlength=k))
    exact(s.counts["pool"], np.bincount(data.train.labels[s.pool], minlength=k))
    exact(s.counts["exemplars"], np.bincount(data.val.labels[s.exemplars], minlength=k))
    exact(s.counts["test"], np.bincount(data.test.labels[s.test], minlength=k))
    assert list(s.counts.index) == list(data.class_names)
    assert list(s.counts["rare"]) == [c in s.rare_classes for c in range(k)]


def test_binary_imbalance_keeps_rare_classes_at_one_over_ratio(blood):
    s = D.binary_imbalance(blood, rare_classes=[2, 5], ratio=10, labeled_per_class=20, pool_per_class=30,
                           exemplars_per_class=3, seed=4)
    _assert_consistent(s, blood)
    expected = np.where(np.isin(np.arange(8), [2, 5]), 2, 20)
    exact(s.counts["labeled"], expected)
    exact(s.counts["pool"], np.where(np.isin(np.arange(8), [2, 5]), 3, 30))
    assert (s.counts["exemplars"] == 3).all()
    assert s.rare_classes == (2, 5) and s.kind == "binary"
    assert len(s.test) == 80


def test_binary_pool_defaults_to_what_the_scarcest_common_class_has_left(blood):
    s = D.binary_imbalance(blood, rare_classes=[0], ratio=5, labeled_per_class=10)
    left = np.bincount(blood.train.labels, minlength=8)[1:] - 10
    assert s.counts["pool"].iloc[1:].tolist() == [left.min()] * 7
    assert s.counts["pool"].iloc[0] == round(left.min() / 5)


def test_scenarios_are_seeded(blood):
    make = lambda seed: D.binary_imbalance(blood, [1], 10, 20, 30, seed=seed)
    a, b, c = make(0), make(0), make(1)
    exact(a.labeled, b.labeled)
    exact(a.pool, b.pool)
    assert a.pool.tolist() != c.pool.tolist()


def test_impossible_requests_give_the_counts_available(blood):
    with pytest.raises(D.DataError, match=r"needs 60 images of class 0 .* only 50 are available"):
        D.binary_imbalance(blood, [1], 10, labeled_per_class=60)
    with pytest.raises(D.DataError, match="do not exist"):
        D.binary_imbalance(blood, [8], 10, 10)
    with pytest.raises(D.DataError, match="at least one"):
        D.binary_imbalance(blood, [], 10, 10)
    with pytest.raises(D.DataError, match="exemplar set"):
        D.binary_imbalance(blood, [1], 10, 10, exemplars_per_class=11)
    with pytest.raises(D.DataError, match="ratio"):
        D.binary_imbalance(blood, [1], 0.5, 10)


def test_long_tail_sizes_follow_the_exponential_profile():
    sizes = D.long_tail_sizes(100, 10, 5)
    exact(sizes, [100, 56, 32, 18, 10])
    assert sizes[0] == 100 and sizes[-1] == 10


def test_long_tail_follows_order_and_marks_the_tail_rare(blood):
    order = [3, 1, 4, 0, 5, 2, 7, 6]
    s = D.long_tail(blood, imbalance_factor=20, labeled_max=40, pool_max=10, order=order, seed=2)
    _assert_consistent(s, blood)
    sizes = D.long_tail_sizes(40, 20, 8)
    for rank, c in enumerate(order):
        assert s.counts["labeled"].iloc[c] == sizes[rank]
        assert s.counts["pool"].iloc[c] == D.long_tail_sizes(10, 20, 8)[rank]
    assert s.rare_classes == tuple(sorted(order[4:]))


def test_long_tail_default_pool_is_the_largest_that_fits(blood):
    s = D.long_tail(blood, imbalance_factor=4, labeled_max=20)
    head = s.counts["pool"].max()
    with pytest.raises(D.DataError):  # one more at the head no longer fits somewhere
        D.long_tail(blood, imbalance_factor=4, labeled_max=20, pool_max=head + 1)


def test_natural_keeps_the_data_as_it_is(blood):
    s = D.natural(blood, labeled_size=50, balanced_test=True, seed=3)
    _assert_consistent(s, blood)
    assert s.counts["labeled"].sum() == 50 and s.counts["pool"].sum() == 350
    assert s.counts["test"].nunique() == 1  # balanced test set
    assert s.rare_classes == ()  # the fixture is balanced: no class is below half its share


# ---------------------------------------------------------------- the official offline files


@pytest.mark.parametrize("flag", sorted(OFFLINE_TRAIN_COUNTS))
def test_offline_sets_have_official_sizes_and_counts(flag, real_root):
    data = D.load_medmnist(flag, root=real_root, download=False)  # verify=True: checksums match
    for split in D.SPLITS:
        assert len(data.split(split).labels) == medmnist.INFO[flag]["n_samples"][split]
    assert np.bincount(data.train.labels).tolist() == OFFLINE_TRAIN_COUNTS[flag]
    assert data.n_channels == medmnist.INFO[flag]["n_channels"]


def test_all_scenario_kinds_on_offline_sets(real_root):
    pneu = D.load_medmnist("pneumoniamnist", root=real_root)
    # TRUST's demo split at 20:1 with pneumonia rare: labeled 100 / 5, pool 1050 / 53
    s = D.binary_imbalance(pneu, rare_classes=[1], ratio=20, labeled_per_class=100, pool_per_class=1050,
                           exemplars_per_class=20, balanced_test=True)
    _assert_consistent(s, pneu)
    assert s.counts["labeled"].tolist() == [100, 5] and s.counts["pool"].tolist() == [1050, 53]
    assert s.counts["test"].tolist() == [234, 234]
    breast = D.load_medmnist("breastmnist", root=real_root)
    s = D.binary_imbalance(breast, rare_classes=[0], ratio=10, labeled_per_class=50)
    _assert_consistent(s, breast)
    assert s.counts["labeled"].tolist() == [5, 50] and s.counts["pool"].tolist() == [35, 349]
    retina = D.load_medmnist("retinamnist", root=real_root)
    s = D.long_tail(retina, imbalance_factor=10, labeled_max=100)
    _assert_consistent(s, retina)
    # head to tail by train frequency: 0, 2, 3, 1, 4; sizes 100, 56, 32, 18, 10; the tail half is rare
    assert s.counts["labeled"].tolist() == [100, 18, 56, 32, 10]
    assert s.rare_classes == (1, 3, 4)
    s = D.natural(retina, labeled_size=300)
    _assert_consistent(s, retina)
    assert s.rare_classes == (4,) and s.counts["labeled"].sum() == 300


def test_long_tail_rare_classes_must_be_the_smallest(blood):
    order = [3, 1, 4, 0, 5, 2, 7, 6]
    s = D.long_tail(blood, 20, 40, 10, order=order, rare_classes=[6], seed=2)  # only the very tail: fine
    assert s.rare_classes == (6,)
    with pytest.raises(D.DataError, match=r"rare class 3 .* gets 40 labeled images, more than class 6 .*order="):
        D.long_tail(blood, 20, 40, 10, order=order, rare_classes=[3])


def test_class_names_name_retinamnists_grades():
    assert D.class_names("retinamnist") == tuple(f"grade {k}" for k in range(5))
    assert D.class_names("pneumoniamnist") == ("normal", "pneumonia")
