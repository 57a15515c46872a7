"""Training throughput: this project's engine against the conventional MedMNIST pipeline.

Both train the same freshly built model for one epoch on PneumoniaMNIST's train split with the same
batch size, optimizer, flip augmentation and device; on CUDA both use the same bf16 autocast and
channels-last step, so the ratio measures the data path alone:
  engine:       the whole split as one uint8 tensor on the device, batches by index permutation;
  conventional: torch DataLoader over medmnist.PneumoniaMNIST with torchvision
                RandomHorizontalFlip / ToTensor / Normalize, batches copied to the device.

    python benchmarks/bench_training.py [--device auto] [--resnet-images N] [--repeats 3]

Prints a table and writes results/bench/training_<device>.json. Data root: $MEDMNIST_ROOT.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import medmnist
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from clinical_utils.data import data_root, load_medmnist
from clinical_utils.records import write_json_atomic
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig, resolve_device, train

BATCH = 128


def conventional_epoch(model, n_images: int, device: torch.device) -> float:
    """One epoch through DataLoader + transforms; returns seconds."""
    tf = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(mean=[0.5], std=[0.5])])
    ds = medmnist.PneumoniaMNIST(split="train", transform=tf, root=str(data_root()), download=False)
    loader = DataLoader(Subset(ds, range(n_images)), batch_size=BATCH, shuffle=True)
    cuda = device.type == "cuda"
    model.to(device).train()
    if cuda:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    start = time.perf_counter()
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last) if cuda else x
        y = y.to(device).view(-1).long()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def engine_epoch(model, images, labels, device: torch.device) -> float:
    start = time.perf_counter()
    train(model, images, labels, TrainConfig(epochs=1, batch_size=BATCH), device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def warm_up(model_name: str, images, device: torch.device) -> None:
    """Two batches first, so that neither pipeline pays for CUDA or kernel initialisation."""
    model = build_model(model_name, 1, 2)
    n = min(2 * BATCH, len(images))
    train(model, images[:n], torch.zeros(n, dtype=torch.long), TrainConfig(epochs=1, batch_size=BATCH),
          device=device, progress=False)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resnet-images", type=int, default=None,
                        help="images per ResNet-18 epoch (default: all on CUDA, 1024 on the CPU, where "
                             "one full epoch takes minutes)")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per pipeline; the fastest counts")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_medmnist("pneumoniamnist")
    n_all = len(data.train.labels)
    resnet_n = args.resnet_images or (n_all if device.type == "cuda" else 1024)
    rows = []
    for model_name, n in (("small_cnn", n_all), ("resnet18", min(resnet_n, n_all))):
        images, labels = data.train.images[:n], data.train.labels[:n]
        warm_up(model_name, images, device)
        # alternate the two pipelines and keep each one's fastest epoch: this machine's noise only slows things down
        t_engine, t_conv = float("inf"), float("inf")
        for _ in range(args.repeats):
            t_engine = min(t_engine, engine_epoch(build_model(model_name, 1, 2), images, labels, device))
            t_conv = min(t_conv, conventional_epoch(build_model(model_name, 1, 2), n, device))
        rows.append({"model": model_name, "images": n, "engine_img_per_s": n / t_engine,
                     "conventional_img_per_s": n / t_conv, "speedup": t_conv / t_engine})
    name = torch.cuda.get_device_name() if device.type == "cuda" else cpu_name()
    report = {"device": device.type, "device_name": name, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "batch_size": BATCH, "repeats": args.repeats, "rows": rows}
    print(f"PneumoniaMNIST train, one epoch (fastest of {args.repeats}), batch {BATCH}, {device.type} "
          f"({name}, {report['threads']} threads)")
    print(f"{'model':<10} {'images':>7} {'engine img/s':>13} {'DataLoader img/s':>17} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<10} {r['images']:>7} {r['engine_img_per_s']:>13.0f} "
              f"{r['conventional_img_per_s']:>17.0f} {r['speedup']:>5.2f}x")
    path = Path(args.out) / f"training_{device.type}.json"
    write_json_atomic(path, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
