"""Video for every image task: frames decoded lazily (PyAV), results per frame, an annotated video out.

``pixelmind predict --source clip.mp4`` (or a folder's videos, or an ``rtsp://`` / ``http(s)://`` URL)
treats each frame as an image named ``clip.mp4#frame=K``; ``--stride N`` keeps every Nth frame; with
``--save`` the rendered frames go into ``OUT/<video>.annotated.mp4`` instead of one picture each. Only a
batch of frames is in memory at a time, however long the video.
"""
