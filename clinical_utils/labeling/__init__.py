"""Targeted labeling of your own images: a labeling project on a folder of scans, its append-only log and labels
CSV (`project`), the grid an expert labels in (`widget`) and the demo folder written from PneumoniaMNIST (`demo`).
"""
from .project import ACTIONS, EXPERT_ACTIONS, TRAINING, LabelingError, LabelingProject, validation_table
from .widget import LabelingWidget

__all__ = ["ACTIONS", "EXPERT_ACTIONS", "TRAINING", "LabelingError", "LabelingProject", "LabelingWidget",
           "validation_table"]
