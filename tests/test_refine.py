import json

import numpy as np
import pytest

from clinical_utils.refinement.refine import SAMPLERS, run_label_refinement
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig

FINETUNE = TrainConfig(epochs=1, batch_size=32, optimizer="adam", lr=1e-3)


@pytest.fixture
def problem():
    """3 classes told apart by brightness; 40% of labels wrong; phase 1 'kept' most clean and a few noisy."""
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 300)
    images = np.clip(50 + 70 * true[:, None, None, None] + rng.normal(0, 12, (300, 1, 28, 28)), 0, 255)
    images = images.astype(np.uint8)
    noisy = true.copy()
    wrong = rng.permutation(300)[:120]
    noisy[wrong] = (true[wrong] + 1 + rng.integers(0, 2, 120)) % 3
    kept = (noisy == true) & (rng.random(300) < 0.8)
    kept[wrong[:10]] = True  # phase 1 is not perfect
    test = rng.integers(0, 3, 90)
    test_images = np.clip(50 + 70 * test[:, None, None, None] + rng.normal(0, 12, (90, 1, 28, 28)), 0, 255)
    return images, noisy, true, kept, test_images.astype(np.uint8), test


def _run(problem, sampler, path=None, **kwargs):
    images, noisy, true, kept, test_images, test = problem
    model = build_model("small_cnn", 1, 3, seed=0)
    return run_label_refinement(model, images, noisy, true, kept, test_images, test, sampler, rounds=2, budget=15,
                                finetune=FINETUNE, rare_classes=[2], seed=0, device="cpu", record_path=path, **kwargs)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_relabels_from_the_set_aside_pool(problem, sampler):
    images, noisy, true, kept, *_ = problem
    record = _run(problem, sampler)
    picks = np.concatenate([r["selected"] for r in record["rounds"]]).astype(np.int64)
    assert len(picks) == 30 and len(set(picks.tolist())) == 30 and not kept[picks].any()
    last = record["rounds"][-1]
    assert last["relabeled"] == 30 and last["corrected"] == int((noisy[picks] != true[picks]).sum())
    training = kept.copy()
    training[picks] = True
    labels = noisy.copy()
    labels[picks] = true[picks]
    assert last["remaining_noise"] == pytest.approx((labels != true).mean())
    assert record["rounds"][0]["remaining_noise"] - last["remaining_noise"] == pytest.approx(last["corrected"] / 300)
    assert sum(last["labeled_per_class"]) == training.sum()
    assert {"balanced_accuracy", "macro_f1", "per_class_accuracy", "auc", "rare_class_accuracy"} <= set(last)


@pytest.mark.parametrize("sampler", ["loss", "label_quality"])
def test_label_rankings_find_wrong_labels_more_often_than_random(problem, sampler):
    """The samplers that rank the given labels (largest loss; cleanlab's label quality, whose order ActiveLab's
    equals with one annotator) send more wrong labels to the expert than random does."""
    corrected = {s: _run(problem, s)["rounds"][-1]["corrected"] for s in (sampler, "random")}
    assert corrected[sampler] > corrected["random"]


def test_kept_noise_is_fixed_only_when_asked(problem):
    images, noisy, true, kept, *_ = problem
    plain = _run(problem, "random")
    fixed = _run(problem, "random", correct_kept_noise=True)
    wrongly_kept = int((kept & (noisy != true)).sum())
    assert fixed["rounds"][0]["remaining_noise"] == pytest.approx(plain["rounds"][0]["remaining_noise"]
                                                                 - wrongly_kept / len(kept))
    assert fixed["parameters"]["correct_kept_noise"] is True


def test_resumed_refinement_equals_uninterrupted(problem, tmp_path):
    whole = _run(problem, "entropy", tmp_path / "whole.json")
    part = json.loads((tmp_path / "whole.json").read_text())
    part["rounds"], part["finished"] = part["rounds"][:2], False
    (tmp_path / "part.json").write_text(json.dumps(part))
    resumed = _run(problem, "entropy", tmp_path / "part.json")
    strip = lambda rec: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rec["rounds"]]  # noqa
    assert strip(resumed) == strip(json.loads(json.dumps(whole)))


def test_bad_input_is_rejected(problem):
    with pytest.raises(ValueError, match="unknown sampler"):
        _run(problem, "flmi")  # an SMI function runs as the sampler smi
    images, noisy, true, kept, test_images, test = problem
    with pytest.raises(ValueError, match="set aside"):
        run_label_refinement(build_model("small_cnn", 1, 3), images, noisy, true, kept, test_images, test, "random",
                             rounds=50, budget=15, finetune=FINETUNE, rare_classes=[2], device="cpu")
