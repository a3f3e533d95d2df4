"""``nnunet``: nnU-Net v2 raw (``imagesTr/CASE_0000.nii.gz`` + ``labelsTr/CASE.nii.gz`` + ``dataset.json``).

``dataset.json`` has ``channel_names`` (channel 0 must be CT) and ``labels``
as ``{"liver": 1}``; region-based labels (lists of ids) are reported as
unmapped. Cases with more than one channel are indexed by channel 0.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..base import LAYOUTS, IndexContext, Layout, LayoutScan, Skipped
from ..labelmap import map_label_names
from ._labelled import add_case, mapping_note, read_dataset_json

_CHANNEL = re.compile(r"^(.*)_(\d{4})(\.nii\.gz|\.nii|\.nrrd|\.mha|\.tif|\.png)$")


@LAYOUTS.register("nnunet", "nnU-Net v2 raw: imagesTr/CASE_0000.nii.gz + labelsTr/CASE.nii.gz + dataset.json")
class NNUNet(Layout):
    name = "nnunet"
    priority = 20

    def detect(self, root: Path) -> bool:
        images = root / "imagesTr"
        return images.is_dir() and any(_CHANNEL.match(p.name) for p in images.iterdir())

    def scan(self, root: Path, context: IndexContext) -> LayoutScan:
        out = LayoutScan()
        data = read_dataset_json(root) if (root / "dataset.json").is_file() else {}
        channels = {str(k): str(v) for k, v in (data.get("channel_names") or data.get("modality") or {}).items()}
        if channels and channels.get("0", "").upper() != "CT":
            out.skipped.append(Skipped(root.name, self.name, f"channel 0 is {channels.get('0')!r}, not CT"))
            return out
        names, regions = {}, []
        for name, value in (data.get("labels") or {}).items():
            if isinstance(value, (list, tuple)):
                regions.append(name)
            else:
                names[int(value)] = str(name)
        mapping = map_label_names(names)
        out.notes.append(mapping_note(mapping, names) + (
            f"; region-based labels not mapped: {', '.join(regions)}" if regions else ""))
        for sub in ("imagesTr", "imagesTs"):
            folder = root / sub
            if not folder.is_dir():
                continue
            labels = root / sub.replace("images", "labels")
            for image in sorted(folder.iterdir()):
                m = _CHANNEL.match(image.name)
                if not m or m.group(2) != "0000":
                    continue
                case, ext = m.group(1), m.group(3)
                label = labels / f"{case}{ext}"
                if sub == "imagesTr" and not label.is_file():
                    out.skipped.append(Skipped(case, self.name, f"no {labels.name}/{label.name}", broken=True))
                    continue
                add_case(out, self.name, case, image, label if label.is_file() else None, mapping, context)
        return out
