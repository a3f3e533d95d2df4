"""Label vocabularies used as conditions: organs, lesions, CT-RATE findings.

Thin view on :mod:`napari_ctfoundation.engine.labels` (the single source of
the names, ids and colours the widgets show), so the class picker and the
model's channel order are the same lists: organ ids 1..117 (TotalSegmentator
v2), lesion ids 1..11 (REFERENCE section 1), 18 CT-RATE findings.
"""

from __future__ import annotations

from typing import Dict, List

from .. import labels

CTRATE_ABNORMALITIES: List[str] = list(labels.CT_RATE_ABNORMALITIES)


def organ_names() -> Dict[int, str]:
    """``{label id: organ name}`` for the 117 TotalSegmentator v2 classes."""
    return labels.organ_names()


def lesion_names() -> Dict[int, str]:
    """``{label id: lesion class}`` for disease masks (ids 1..11)."""
    return labels.lesion_names()


def vocabulary() -> Dict[str, object]:
    """JSON-ready vocabularies saved inside every pipeline and cache."""
    return {
        "organs": {str(k): v for k, v in organ_names().items()},
        "lesions": {str(k): v for k, v in lesion_names().items()},
        "findings": list(CTRATE_ABNORMALITIES),
    }
