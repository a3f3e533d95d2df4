"""docs/python_api.md: every ```python block runs, in order, in one namespace, on the sample data."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "python_api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str):
    """(line number, code) of every ```python block."""
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_doc_has_blocks_for_every_workflow():
    text = DOC.read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 10
    code = "\n".join(c for _, c in blocks)
    for call in ("ctf.read_volume", "ctf.reconstruct_volume", "ctf.compare_reconstruction", "ctf.write_volume",
                 "ctf.save_latents", "ctf.decode_latents", "ctf.simulate_sparse_views", "ctf.index_dataset",
                 "ctf.train_dice", "ctf.evaluate_sparse_views", "GenerationPipeline.from_pretrained"):
        assert call in code, call
    # every name the doc's table lists is public
    import napari_ctfoundation as ctf

    table = text[text.index("## The public names"):]
    listed = set(re.findall(r"`([A-Za-z_]+)`", table.split("The list is pinned")[0]))
    assert listed - {"lung"} <= set(ctf.__all__)
    assert set(ctf.__all__) <= listed


@pytest.mark.slow
def test_every_python_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the doc writes below out/ and my_dataset/ of the folder it runs in
    namespace: dict = {"__name__": "__docs__"}
    for line, code in python_blocks(DOC.read_text()):
        try:
            exec(compile(code, f"{DOC.name}:{line}", "exec"), namespace)
        except Exception as exc:  # name the block that failed
            raise AssertionError(f"docs/python_api.md block at line {line} failed: {exc!r}") from exc
    printed = capsys.readouterr().out
    ns = namespace

    # 1. the snippet: metrics in the lung window, written back in the source layout
    assert ns["res"].metrics["window_hu"] == [-1350.0, 150.0] and ns["res"].metrics["psnr_db"] > 25
    assert Path("out/recon.nii.gz").is_file()
    rows = {r.method: r for r in ns["table"].rows}
    assert set(rows) == {"taef2", "bicubic_f64", "bicubic_f16"}
    assert rows["taef2"].psnr_db > rows["bicubic_f64"].psnr_db  # 32x more numbers per voxel buy this
    # 2. latents round trip and storage line
    assert ns["decoded"].shape == ns["small"].shape and ns["scores"]["psnr_db"] > 25
    assert "kB of latents" in printed
    # 3. sparse: all three methods scored on the same grid
    assert set(ns["sparse_scores"]) == {"fdk", "sart", "dice"}
    assert ns["sparse_scores"]["sart"]["psnr"] > ns["sparse_scores"]["fdk"]["psnr"]
    # 4. index, train, evaluate, batch
    assert sorted(c.case for c in ns["index"].cases) == ["abdomen", "chest"]
    assert (Path(ns["checkpoint"]) / "model.safetensors").is_file()
    assert {(r["method"], r["views"]) for r in ns["rows"]} == {(m, v) for m in ("fdk", "sart", "dice") for v in (6, 12)}
    assert all(np.isfinite(r["psnr"]) for r in ns["rows"])
    assert sorted(ns["summary"].done) == ["abdomen", "chest"] and not ns["summary"].failed
    assert [c.case for c in ns["comparison"].cases] == ["abdomen", "chest"]
    for case in ns["comparison"].cases:
        psnr = {r.method: r.psnr_db for r in case.result.rows}
        assert psnr["taef2"] > psnr["bicubic_f64"], case.case
    with open(Path(ns["checkpoint"]) / "loss_log.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [1, 2, 3]
    # 5. generation: the mask's grid, deterministic for a seed
    assert ns["generated"].volume.shape == ns["organs"].shape
    assert "same seed, same latents: True" in printed
    assert os.path.isfile("out/generated.nii.gz")
