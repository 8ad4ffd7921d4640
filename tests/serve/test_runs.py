"""The runs API (``pixelmind.serve.runs``) on a bare FastAPI app over a temporary runs folder."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from pixelmind.serve.runs import runs_router

CSV = """epoch,train/loss,lr,img_per_s,time_s,val/top1,val/loss,val/f1
1,2.22097,0.001,253.257,5.55957,0.281337,2.24534,0.195569
2,1.5,0.0008,260.1,5.1,0.55,1.6,0.5
3,0.9,0.0002,261.0,5.0,0.81,1.1,nan
"""


def _png(path: Path, size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.fixture()
def tree(tmp_path):
    """runs/classify/c (full run), runs/enhance/e (metrics.json only), runs/classify/empty (not a run),
    plus a secret folder outside the root and symlinks into it."""
    root = tmp_path / "runs"
    run = root / "classify" / "c"
    (run / "plots").mkdir(parents=True)
    (run / "weights").mkdir()
    (run / "results.csv").write_text(CSV)
    (run / "metrics.json").write_text(json.dumps({"metrics": {"top1": 0.81, "loss": 1.1, "bad": float("nan")},
                                                  "best_epoch": 3, "epochs_run": 3}))  # fmt: skip
    png = _png(run / "plots" / "curves.png")
    (run / "plots" / "notes.txt").write_text("not a plot")
    (root / "enhance" / "e").mkdir(parents=True)
    (root / "enhance" / "e" / "metrics.json").write_text(json.dumps({"metrics": {"psnr": 30.5}}))
    (root / "classify" / "empty").mkdir()

    secret = tmp_path / "secret"
    (secret / "run").mkdir(parents=True)
    (secret / "run" / "results.csv").write_text("epoch,leak\n1,42\n")
    (secret / "run" / "metrics.json").write_text("{}")
    _png(secret / "leak.png")
    links = {
        root / "classify" / "evil": secret / "run",  # a run folder that is a symlink out of root
        root / "outside": secret,  # a task folder that is a symlink out of root
        run / "plots" / "leak.png": secret / "leak.png",  # a plot file that is a symlink out of root
    }
    for link, target in links.items():
        os.symlink(target, link)
    client = TestClient(_app(root))
    return client, root, png


def _app(root: Path) -> FastAPI:
    app = FastAPI()
    app.include_router(runs_router(root))
    return app


def test_list_runs(tree):
    client, _, _ = tree
    r = client.get("/v1/runs")
    assert r.status_code == 200
    runs = {x["id"]: x for x in r.json()}
    assert set(runs) == {"classify/c", "enhance/e"}  # no empty folder, no symlinked run
    c = runs["classify/c"]
    assert (c["task"], c["name"], c["best_epoch"], c["epochs_run"]) == ("classify", "c", 3, 3)
    assert c["metrics"] == {"top1": 0.81, "loss": 1.1}  # NaN metric dropped: JSON has none
    assert c["plots"] == ["curves.png"]  # not the .txt, not the symlink
    assert isinstance(c["modified"], float) and c["modified_iso"].endswith("+00:00")
    assert c["has_results"] is True
    e = runs["enhance/e"]
    assert e["metrics"] == {"psnr": 30.5} and e["plots"] == [] and e["has_results"] is False


def test_results_as_float_rows(tree):
    client, _, _ = tree
    rows = client.get("/v1/runs/classify/c/results").json()
    assert len(rows) == 3
    assert list(rows[0]) == [
        "epoch",
        "train/loss",
        "lr",
        "img_per_s",
        "time_s",
        "val/top1",
        "val/loss",
        "val/f1",
    ]
    assert rows[0]["epoch"] == 1.0 and isinstance(rows[0]["epoch"], float)
    assert rows[1]["val/top1"] == pytest.approx(0.55)
    assert rows[2]["val/f1"] is None  # nan -> null


def test_plot_png(tree):
    client, _, png = tree
    r = client.get("/v1/runs/classify/c/plots/curves.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == png


def test_missing_root_and_missing_things(tmp_path, tree):
    client, _, _ = tree
    assert TestClient(_app(tmp_path / "nope")).get("/v1/runs").json() == []
    assert TestClient(_app(tmp_path / "nope")).get("/v1/runs/classify/c/results").status_code == 404
    for url in ["/v1/runs/enhance/e/results",  # run without results.csv
                "/v1/runs/classify/empty/results",  # not a run
                "/v1/runs/classify/zzz/results", "/v1/runs/zzz/c/results",
                "/v1/runs/classify/c/plots/missing.png",
                "/v1/runs/classify/c/plots/notes.txt"]:  # fmt: skip
        r = client.get(url)
        assert r.status_code == 404, url
        assert "error" in r.json()


@pytest.mark.parametrize(
    "url",
    [
        "/v1/runs/classify/c/plots/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/runs/classify/c/plots/..%2Fresults.csv",
        "/v1/runs/classify/c/plots/%2Fetc%2Fpasswd",
        "/v1/runs/classify/c/plots/%2E%2E",
        "/v1/runs/..%2F..%2Fetc%2Fpasswd/x/results",
        "/v1/runs/%2E%2E/runs/results",  # task ".." -> tmp_path; "runs" is not a task there
        "/v1/runs/classify/%2E%2E/results",
        "/v1/runs/classify/.%2F..%2F..%2Fsecret%2Frun/results",
        "/v1/runs/%2Ftmp/c/results",
        "/v1/runs/classify/c%2F..%2F..%2F..%2Fsecret%2Frun/results",
        "/v1/runs/classify/c%00/results",
        "/v1/runs/classify/evil/results",  # a symlinked run folder pointing outside the root
        "/v1/runs/outside/run/results",  # a symlinked task folder pointing outside the root
        "/v1/runs/classify/c/plots/leak.png",  # a symlinked plot pointing outside the root
        "/v1/runs/classify/c/plots/..%5C..%5Cresults.csv",
    ],
)
def test_traversal_is_404(tree, url):
    client, _, _ = tree
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code, r.text[:200])
    assert b"leak" not in r.content and b"root:" not in r.content


def test_symlink_root_itself_is_followed(tmp_path, tree):
    """The configured root may itself be a symlink (e.g. runs -> /data/runs): that one is trusted."""
    _, root, _ = tree
    alias = tmp_path / "alias"
    os.symlink(root, alias)
    client = TestClient(_app(alias))
    assert {x["id"] for x in client.get("/v1/runs").json()} == {"classify/c", "enhance/e"}
    assert client.get("/v1/runs/classify/c/plots/curves.png").status_code == 200
