"""Multi-object tracking: a detector's boxes on every frame of a video, linked into tracks with ids.

:mod:`.bytetrack` associates (ByteTrack: high-score boxes first, then the low-score ones to keep tracks
alive through occlusion; a constant-velocity Kalman filter predicts each track), :mod:`.mot` reads and
writes MOT-Challenge files and scores tracks with motmetrics (MOTA, IDF1, ID switches), :mod:`.synth`
makes moving-shapes videos with their ground truth, and :mod:`.cli` is the ``pixelmind track`` verb.
"""
