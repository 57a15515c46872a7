"""clinical_utils: targeted active learning and active label refinement on imbalanced MedMNIST images."""
__version__ = "0.1.0"
