"""UCF101 middle frames from frame files, frame folders and (with PyAV) videos."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kec.datasets import DatasetError, load_dataset
from kec.datasets.ucf101 import class_name_from_folder, middle_frame


def _img(path, colour):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), colour).save(path)


def test_class_names_from_folders():
    assert class_name_from_folder("ApplyEyeMakeup") == "apply eye makeup"
    assert class_name_from_folder("YoYo") == "yo yo"
    assert class_name_from_folder("PlayingDaf") == "playing daf"
    assert class_name_from_folder("TaiChi") == "tai chi"


def test_frames_and_frame_folders(tmp_path):
    root = tmp_path / "UCF-101"
    _img(root / "ApplyLipstick" / "v_ApplyLipstick_g01_c01.jpg", (255, 0, 0))
    for i, colour in enumerate([(0, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)]):
        # four frames: the middle one is the second (index (4 - 1) // 2 = 1)
        _img(root / "Archery" / "v_Archery_g01_c01" / f"{i:05d}.jpg", colour)
    (root / "Archery" / "notes.txt").write_text("ignored")
    ds = load_dataset("ucf101", tmp_path, frames_dir=tmp_path / "frames")
    assert ds.class_names == ["apply lipstick", "archery"]
    assert ds.ids == ["ApplyLipstick/v_ApplyLipstick_g01_c01", "Archery/v_Archery_g01_c01"]
    assert ds.targets.tolist() == [0, 1]
    g = np.asarray(ds.load_image(1), dtype=int).mean(axis=(0, 1))
    assert g[1] > 200 and g[0] < 30


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset("ucf101", tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="needs PyAV (pip install av)")
def test_middle_frame_of_a_video_is_decoded_once_and_cached(tmp_path):
    import av

    video = tmp_path / "ucf" / "Biking" / "v_Biking_g01_c01.avi"
    video.parent.mkdir(parents=True)
    colours = [(250, 0, 0)] * 3 + [(0, 0, 250)] * 3 + [(0, 250, 0)] * 3  # middle: blue
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for colour in colours:
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), colour, np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    rgb = np.asarray(middle_frame(video), dtype=int).mean(axis=(0, 1))
    assert rgb[2] > 150 and rgb[0] < 80
    frames = tmp_path / "frames"
    ds = load_dataset("ucf101", tmp_path / "ucf", frames_dir=frames)
    assert ds.paths == [frames / "Biking" / "v_Biking_g01_c01.jpg"]
    assert ds.ids == ["Biking/v_Biking_g01_c01"] and ds.class_names == ["biking"]
    mtime = ds.paths[0].stat().st_mtime_ns
    assert load_dataset("ucf101", tmp_path / "ucf", frames_dir=frames).paths[0] \
        .stat().st_mtime_ns == mtime


def test_undecodable_video_is_skipped(tmp_path):
    bad = tmp_path / "ucf" / "Biking" / "v_Biking_g01_c02.avi"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a video")
    _img(tmp_path / "ucf" / "Biking" / "v_Biking_g01_c01.jpg", (1, 2, 3))
    if importlib.util.find_spec("av") is None:
        from kec.errors import MissingDependencyError

        with pytest.raises(MissingDependencyError):
            load_dataset("ucf101", tmp_path / "ucf", frames_dir=tmp_path / "f")
        return
    ds = load_dataset("ucf101", tmp_path / "ucf", frames_dir=tmp_path / "f")
    assert ds.ids == ["Biking/v_Biking_g01_c01"]
    assert ds.info["skipped"] == [str(bad)]
