"""Dataset indexing: public CT layouts -> one manifest CSV every dataset command reads.

``index_dataset`` recognises a layout (one recogniser per file in
``layouts/``, registered in :data:`LAYOUTS`), checks every case and writes
``case,image,organ_mask,disease_mask,report,layout`` (see ``manifest.py``).
"""

from .base import LAYOUTS, IndexContext, Layout, LayoutScan, Skipped
from .index import IndexResult, detect_layout, format_summary, index_dataset
from .manifest import (MANIFEST_COLUMNS, DatasetCase, is_dataset_manifest, read_dataset_manifest,
                       write_manifest)

__all__ = [
    "LAYOUTS", "IndexContext", "Layout", "LayoutScan", "Skipped", "IndexResult", "detect_layout",
    "format_summary", "index_dataset", "MANIFEST_COLUMNS", "DatasetCase", "is_dataset_manifest",
    "read_dataset_manifest", "write_manifest",
]
