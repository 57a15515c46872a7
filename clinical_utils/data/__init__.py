"""The images: MedMNIST sets (`medmnist`), your own folders of scans (`folders`) and the seeded class-imbalance
scenarios the CLINICAL experiments draw from them (`scenarios`). Images are uint8 (N, C, H, W), labels int64 (N,).
"""
from .folders import IMAGE_SUFFIXES, FolderData, load_folder
from .medmnist import (FLAGS_2D, SIZES, SPLITS, DataError, MedMNIST, Split, class_names, data_root, ensure_file,
                       file_name, load_medmnist, set_name)
from .scenarios import Scenario, binary_imbalance, check_scenario, long_tail, long_tail_sizes, natural

__all__ = ["FLAGS_2D", "IMAGE_SUFFIXES", "SIZES", "SPLITS", "DataError", "FolderData", "MedMNIST", "Scenario",
           "Split", "binary_imbalance", "check_scenario", "class_names", "data_root", "ensure_file", "file_name",
           "load_folder", "load_medmnist", "long_tail", "long_tail_sizes", "natural", "set_name"]
