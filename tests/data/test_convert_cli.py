"""`pixelmind convert` and `pixelmind check --task detect` from the command line, on real files."""

from __future__ import annotations

import json
import subprocess
import sys

from pixelmind.data.boxes import find_detection_data
from pixelmind.data.shapes import save_shapes


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixelmind", *args], capture_output=True, text=True)


def test_convert_to_voc_then_check_counts_the_same_boxes(tmp_path):
    root = save_shapes(tmp_path / "coco", "train", count=8, size=32)
    save_shapes(tmp_path / "coco", "val", count=3, size=32)
    proc = _cli("convert", "--data", str(root), "--to", "voc", "-o", str(tmp_path / "voc"))
    assert proc.returncode == 0, proc.stderr
    src, dst = find_detection_data(root), find_detection_data(tmp_path / "voc")
    assert dst.layout == "voc" and dst.class_names == src.class_names
    assert sum(len(i.boxes) for i in dst.train + dst.val) == sum(len(i.boxes) for i in src.train + src.val)
    check = _cli("check", "--task", "detect", "--data", str(tmp_path / "voc"), "--out", str(tmp_path / "check"), "--json")
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout.strip().splitlines()[-1])
    assert report["problems"] == [] and (tmp_path / "check" / "box_size.png").exists()


def test_convert_refuses_an_unknown_format(tmp_path):
    proc = _cli("convert", "--data", str(tmp_path), "--to", "png", "-o", str(tmp_path / "out"))
    assert proc.returncode == 2 and "to: must be coco, yolo or voc" in proc.stderr and "Traceback" not in proc.stderr
