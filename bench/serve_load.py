"""Load test of ``pixelmind serve`` on loopback: 50 concurrent clients x 20 requests, with and without batching.

A real server process per mode (``python -m pixelmind serve``), the same classify model, the same
image (a 64x64 PNG digit), raw-body uploads. Prints errors, p50/p99 latency and throughput per mode and
the ratio of the two throughputs.

    .venv/bin/python bench/serve_load.py [--weights W] [--clients 50] [--requests 20]
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_weights(root: Path) -> Path:
    """A pm_cnn_s classifier trained 3 epochs on the built-in digits at 32 px."""
    from pixelmind.api import Model

    model = Model("pm_cnn_s", task="classify")
    model.train(data="digits", epochs=3, imgsz=32, project=str(root), name="load", workers=0)
    return model.weights_path


def resnet_weights(root: Path) -> Path:
    """An untrained timm resnet18 classifier at 224 px: compute-bound, where batching should pay."""
    from pixelmind.config import TrainConfig
    from pixelmind.engine.checkpoint import save_weights
    from pixelmind.tasks import get_task
    from pixelmind.tasks.base import Meta

    meta = Meta(task="classify", model="resnet18", class_names=[str(i) for i in range(10)], imgsz=224)
    net = get_task("classify").build_model(TrainConfig(task="classify", data="digits", model="resnet18"), meta)
    path = root / "resnet18.safetensors"
    save_weights(path, net.state_dict(), meta, {"task": "classify", "data": "digits"})
    return path


def digit_png() -> bytes:
    from PIL import Image
    from sklearn.datasets import load_digits

    arr = (load_digits().images[0] * 16).clip(0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).resize((64, 64)).save(buf, format="PNG")
    return buf.getvalue()


def serve(weights: Path, port: int, max_batch: int, max_wait_ms: float) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, "-m", "pixelmind", "serve", "--weights", str(weights), "--port", str(port),
           "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--queue", "1024"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-500:]}")
    proc.kill()
    raise RuntimeError("the server did not come up in 30 s")


def main() -> int:
    from pixelmind.serve.loadtest import run_load

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--resnet", action="store_true", help="serve an untrained resnet18 at 224 px instead of the small digits CNN")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=0.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pm-load-"))
    weights = args.weights or (resnet_weights(root) if args.resnet else default_weights(root))
    payload = digit_png()
    print(machine())
    print(f"{args.clients} clients x {args.requests} requests, weights {weights}")
    print("| mode | ok | errors | p50 ms | p99 ms | throughput req/s | mean batch |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for mode, max_batch, wait in (("no batching (max_batch 1)", 1, 0.0), (f"batching (max_batch {args.max_batch}, {args.max_wait_ms:g} ms)", args.max_batch, args.max_wait_ms)):
        port = free_port()
        proc = serve(weights, port, max_batch, wait)
        try:
            import httpx

            name = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()[0]["name"]
            url = f"http://127.0.0.1:{port}/v1/models/{name}/predict"
            run_load(url, payload, clients=4, requests=5)  # warm-up
            stats = run_load(url, payload, clients=args.clients, requests=args.requests)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        results[max_batch] = stats
        print(f"| {mode} | {stats['ok']} | {stats['errors']} | {stats['p50_ms']:.1f} | {stats['p99_ms']:.1f} | "
              f"{stats['throughput_rps']:.1f} | {stats['mean_batch']:.2f} |")  # fmt: skip
    ratio = results[args.max_batch]["throughput_rps"] / results[1]["throughput_rps"]
    print(f"throughput with batching / without: {ratio:.2f}x")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
