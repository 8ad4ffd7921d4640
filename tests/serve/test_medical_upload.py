"""A DICOM upload (no file name, recognised by its DICM header) is predicted like any image; a broken one is a 400."""

from __future__ import annotations

import httpx
import numpy as np
from medical_helpers import write_ct


def test_dicom_upload_is_predicted_and_a_truncated_one_is_refused(tmp_path, start_server, serve_models):
    server = start_server({"digits": serve_models["classify"]})
    data = write_ct(tmp_path / "ct.dcm", np.tile(np.linspace(0, 4095, 16), (16, 1)), WindowCenter=40, WindowWidth=400).read_bytes()
    r = httpx.post(f"{server}/v1/models/digits/predict", content=data, timeout=30)
    assert r.status_code == 200 and "label" in r.json()["result"], r.text
    r = httpx.post(f"{server}/v1/models/digits/predict", content=data[:-100], timeout=30)
    assert r.status_code == 400 and "cannot decode the DICOM pixel data" in r.json()["error"]
