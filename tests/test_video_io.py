"""nst.video_io and nst.video_settings: clips in and out, the bad inputs in one line, the run folder's resume."""

import subprocess

import numpy as np
import pytest

from nst import video_io
from nst.errors import NSTError, SettingsError
from nst.images import save_image
from nst.video_settings import SAMPLE_CLIP_PATH, VideoSettings, parse_video_setting
from nst.video_synthetic import moving_square_frames


def ffmpeg(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A 4-frame 64×48 mp4 with a sine-wave audio track."""
    folder = tmp_path_factory.mktemp("clip")
    for index, frame in enumerate(moving_square_frames(4, 48, 64, 16, 2)):
        save_image(folder / f"f{index}.png", frame)
    path = folder / "tiny.mp4"
    ffmpeg("-framerate", "8", "-i", str(folder / "f%d.png"), "-f", "lavfi", "-i", "sine=duration=0.5",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(path))  # fmt: skip
    return path


def test_the_sample_clip_is_small_and_readable():
    info = video_io.probe_clip(SAMPLE_CLIP_PATH, max_side_px=256)
    assert SAMPLE_CLIP_PATH.stat().st_size < 1_000_000
    assert (info.n_frames, info.size_px, info.fps, info.notes) == (24, (192, 256), 12.0, ())


def test_a_clip_reads_at_its_size_with_its_audio(tiny_clip):
    info = video_io.probe_clip(tiny_clip, max_side_px=64)
    assert (info.n_frames, info.size_px, info.has_audio, info.fps) == (4, (48, 64), True, 8.0)
    frames = video_io.read_frames(video_io.probe_clip(tiny_clip, max_side_px=64, max_frames=3))
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.float32


def test_a_folder_of_frames_is_a_clip(tmp_path):
    for index, frame in enumerate(moving_square_frames(3, 24, 32, 8, 2)):  # smaller than VGG's 32 px: upscaled
        save_image(tmp_path / f"frame_{index:02d}.png", frame)
    info = video_io.probe_clip(tmp_path, max_side_px=64)
    assert (info.n_frames, info.size_px, len(info.frame_paths), info.fps) == (3, (48, 64), 3, video_io.FOLDER_FPS)
    assert [f.shape for f in video_io.read_frames(info)] == [(48, 64, 3)] * 3


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_text("not a video"), "is not a video ffmpeg can open"),
        (lambda p: p.write_bytes(b""), "is not a video ffmpeg can open"),
        (lambda p: ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", str(p.with_suffix(".m4a"))), "zero frames"),
    ],
    ids=["text", "empty", "audio-only"],
)
def test_bad_inputs_are_one_line_naming_the_file(tmp_path, make, expected):
    path = tmp_path / "clip.mp4"
    make(path)
    path = path if path.exists() else path.with_suffix(".m4a")
    with pytest.raises(NSTError) as error:
        video_io.probe_clip(path, max_side_px=64)
    assert expected in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_an_unreadable_codec_is_named_with_the_fix(tmp_path, tiny_clip):
    broken = tmp_path / "codec.mp4"
    broken.write_bytes(tiny_clip.read_bytes().replace(b"avc1", b"zzzz"))  # a codec no decoder knows
    with pytest.raises(NSTError, match=r"codec.*cannot be decoded.*re-encode"):
        video_io.probe_clip(broken, max_side_px=64)


def test_hidden_files_of_a_frames_folder_are_no_frames(tmp_path):
    for index, frame in enumerate(moving_square_frames(2, 24, 32, 8, 2)):
        save_image(tmp_path / f"frame_{index:02d}.png", frame)
    (tmp_path / "._frame_00.png").write_bytes(b"Mac OS X resource fork")  # left by a copy from a Mac
    info = video_io.probe_clip(tmp_path, max_side_px=64)
    assert [p.rsplit("/", 1)[1] for p in info.frame_paths] == ["frame_00.png", "frame_01.png"]


def test_an_empty_folder_has_zero_frames(tmp_path):
    with pytest.raises(NSTError, match="zero frames"):
        video_io.probe_clip(tmp_path, max_side_px=64)


def test_a_clip_too_large_for_memory_names_the_fix():
    info = video_io.ClipInfo("big.mp4", 100_000, 30.0, (1080, 1920), False)
    with pytest.raises(NSTError, match=r"big.mp4: 100000 frames at 1920×1080 px need about .* -p max_frames \d+"):
        video_io.check_clip_memory(info, model_bytes=2e9, available=8e9)
    small = video_io.ClipInfo("small.mp4", 10, 30.0, (192, 256), False)
    assert video_io.check_clip_memory(small, model_bytes=2e9, available=8e9) > 0


def test_the_run_folder_resumes_after_the_last_finished_frame(tmp_path):
    folder = video_io.VideoRunFolder(tmp_path)
    assert folder.start({"gamma": 1.0}, resume=False) == 0
    frame = np.full((8, 8, 3), 0.5, np.float32)
    row = dict.fromkeys(video_io.METRICS_FIELDS, 0.0)
    for index in range(3):
        folder.record(index, frame, {**row, "frame": index, "iterations": 2})
    save_image(folder.frame_path(3), frame)  # saved, then interrupted before its metrics row
    assert folder.finished_frames() == 3
    assert video_io.VideoRunFolder(tmp_path).start({"gamma": 1.0}, resume=True) == 3
    assert not folder.frame_path(3).exists(), "a frame without its metrics row is done again"
    with pytest.raises(NSTError, match=r"gamma was 1\.0 in that run, now 2\.0"):
        folder.start({"gamma": 2.0}, resume=True)


def test_the_outputs_are_a_video_with_the_audio_and_a_gif(tmp_path, tiny_clip):
    folder = video_io.VideoRunFolder(tmp_path)
    folder.start({}, resume=False)
    for index, frame in enumerate(video_io.read_frames(video_io.probe_clip(tiny_clip, 67))):  # odd height: padded
        folder.record(index, frame, {**dict.fromkeys(video_io.METRICS_FIELDS, 0.0), "frame": index})
    video_path, gif_path = folder.finish(8.0, str(tiny_clip))
    info = video_io.probe_clip(video_path, max_side_px=64)
    assert info.n_frames == 4 and info.has_audio and gif_path.stat().st_size > 0


def test_video_settings_are_checked_in_one_line():
    with pytest.raises(SettingsError, match="gamma"):
        VideoSettings(gamma=-1)
    with pytest.raises(SettingsError, match="alpha"):  # a shared setting, checked by nst.settings
        VideoSettings(alpha=float("nan"))
    with pytest.raises(SettingsError, match="resume=True needs run_dir"):
        VideoSettings(resume=True)
    assert parse_video_setting("max_frames", "None") is None
    assert parse_video_setting("warm_start", "False") is False
    with pytest.raises(SettingsError, match="unknown parameter gama"):
        parse_video_setting("gama", "1")
