"""Dataset workflows: batch reconstruction and nnU-Net export (issue 5)."""

from .dataset import Case, discover_cases
from .nnunet import export_nnunet
from .runner import BatchSummary, load_rows, merge_csv, run_batch

__all__ = ["Case", "discover_cases", "run_batch", "BatchSummary", "load_rows", "merge_csv",
           "export_nnunet"]
