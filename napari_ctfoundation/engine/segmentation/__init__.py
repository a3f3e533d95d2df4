"""3D organ segmentation with reconstruction augmentation (issue 5).

data: cases on a training grid; model: MONAI SegResNet/UNet + checkpoints;
train: patch training where a sample is the reconstruction with probability
p; evaluate: Dice / NSD / HD95 per case and class; compare: baseline vs
augmented table. Heavy imports (torch, monai) stay inside functions.
"""

from .data import SegCase, load_case, load_dataset, organ_table, parse_classes
from .model import SegConfig, load_model
from .train import train_segmenter
from .evaluate import case_metrics, evaluate_cases, read_evaluation, write_evaluation
from .compare import compare_tables, format_table

__all__ = ["SegCase", "SegConfig", "load_case", "load_dataset", "organ_table", "parse_classes", "load_model",
           "train_segmenter", "case_metrics", "evaluate_cases", "read_evaluation",
           "write_evaluation", "compare_tables", "format_table"]
