#!/usr/bin/env bash
# Install the peer of benchmark 2 (issue #3): Ultralytics YOLO in its own venv, bench/.venv-ultralytics.
# It is not a pixelmind dependency. torch/torchvision are pinned to the releases that lie on this
# machine's disk (the pip index in /opt/pypi-more); any other version would download gigabytes.
#   bash bench/peer_ultralytics.sh            # creates the venv if missing, prints the versions
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-ultralytics"
python="${PYTHON:-python3.11}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# its import writes settings.json to ~/.config/Ultralytics unless told another folder
export YOLO_CONFIG_DIR="$here/out/ultralytics_config" YOLO_OFFLINE=1
# onnx, onnxslim, onnxruntime: its ONNX export and predict (bench/detect_vs_yolo11n.py); the same onnx/ort as pixelmind
"$venv/bin/pip" install --quiet torch==2.14.1 torchvision==0.29.1 ultralytics onnx==1.23.2 onnxslim onnxruntime==1.32.0
"$venv/bin/python" -c "import torch, torchvision, ultralytics; print('peer venv:', ultralytics.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
