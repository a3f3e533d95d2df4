"""``msd``: Medical Segmentation Decathlon (``dataset.json`` + ``imagesTr/`` + ``labelsTr/``).

``dataset.json`` lists ``training`` pairs and ``labels`` as ``{"1": "liver"}``;
``modality`` must be CT. Label names map by name to organ or lesion ids
(``labelmap.py``); remapped maps are written to ``masks/`` beside the manifest.
Test images (``imagesTs``, no labels) are indexed too.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from ..base import LAYOUTS, IndexContext, Layout, LayoutScan, Skipped
from ..labelmap import map_label_names
from ._files import stem
from ._labelled import add_case, mapping_note, read_dataset_json
from .nnunet import _CHANNEL


def _resolve(root: Path, rel: str) -> Path:
    return (root / rel).resolve() if rel else root


@LAYOUTS.register("msd", "Medical Segmentation Decathlon: dataset.json (labels by name) + imagesTr/ + labelsTr/")
class MSD(Layout):
    name = "msd"
    priority = 10

    def detect(self, root: Path) -> bool:
        if not ((root / "dataset.json").is_file() and (root / "imagesTr").is_dir()):
            return False
        try:
            data = read_dataset_json(root)
        except ConfigError:
            return False
        # nnU-Net v1 tasks also have "training"; their images carry the _0000 channel suffix
        channel_files = [p for p in (root / "imagesTr").iterdir() if _CHANNEL.match(p.name)]
        return "training" in data and "channel_names" not in data and not channel_files

    def scan(self, root: Path, context: IndexContext) -> LayoutScan:
        data = read_dataset_json(root)
        out = LayoutScan()
        modality = {str(v).upper() for v in (data.get("modality") or {}).values()}
        if modality and modality != {"CT"}:
            out.skipped.append(Skipped(root.name, self.name, f"modality {', '.join(sorted(modality))}, not CT"))
            return out
        names = {int(k): str(v) for k, v in (data.get("labels") or {}).items()}
        mapping = map_label_names(names)
        out.notes.append(mapping_note(mapping, names))
        for entry in data.get("training") or []:
            image = _resolve(root, entry.get("image", ""))
            label = _resolve(root, entry.get("label", "")) if entry.get("label") else None
            case = stem(image)
            if not image.is_file():
                out.skipped.append(Skipped(case, self.name, f"image {image.name} listed in dataset.json is missing",
                                           broken=True))
                continue
            if label is not None and not label.is_file():
                out.skipped.append(Skipped(case, self.name, f"label {label.name} listed in dataset.json is missing",
                                           broken=True))
                continue
            add_case(out, self.name, case, image, label, mapping, context)
        for rel in data.get("test") or []:
            image = _resolve(root, rel if isinstance(rel, str) else rel.get("image", ""))
            if image.is_file():
                add_case(out, self.name, stem(image), image, None, mapping, context)
            else:
                out.skipped.append(Skipped(stem(image), self.name, "test image listed in dataset.json is missing",
                                           broken=True))
        return out
