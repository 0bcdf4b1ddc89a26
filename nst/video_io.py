"""Clips in and out: probe and read a video (or a folder of frames), and a video run's folder. No TensorFlow.

Video I/O is imageio-ffmpeg, whose wheel ships its own ffmpeg binary: no system ffmpeg is needed. Frames are
(H, W, 3) float32 RGB in [0, 1], resized with nst.images.resize_image, sizes (height_px, width_px).
A video run's folder holds frames/frame_NNNN.png (each written whole, once its frame is finished), metrics.csv
(one row per finished frame), params.json, and at the end out.mp4 and preview.gif.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nst.errors import NSTError
from nst.images import fit_to_max_side, load_image, resize_image, rgb01_to_uint8, save_image, write_atomically

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_FPS = 12.0  # frames per second of a folder of frames, which carries none
FRAMES_MEMORY_SHARE = 0.5  # the clip's frames may take at most this share of the memory the model leaves
BYTES_PER_FRAME_PIXEL = 3 * 4 * 2  # float32 RGB, for the input frame and its stylised frame
METRICS_FIELDS = (
    "frame",  # 0-based index in the clip
    "iterations",  # L-BFGS iterations run on this frame
    "seconds",  # wall time of the frame: flow, mask and optimisation
    "total",
    "content",
    "style",
    "temporal",  # J_temporal against the warped previous stylised frame (0 for the first frame)
    "consistency",  # mean squared difference to the warped previous stylised frame, over trusted pixels
    "trusted_fraction",  # share of pixels whose flow passed the consistency check
)
PREVIEW_SIDE_PX = 160  # long side of preview.gif


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """What a clip is, read without decoding it all."""

    path: str
    n_frames: int
    fps: float
    size_px: tuple[int, int]  # (height_px, width_px) of the stored frames
    has_audio: bool
    is_folder: bool


def probe_clip(path: str | os.PathLike) -> ClipInfo:
    """A video file's or a frames folder's frame count, rate, size and audio; NSTError in one line if unusable."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        frame_paths = frame_files(path)
        return ClipInfo(str(path), len(frame_paths), FOLDER_FPS, _stored_size_px(frame_paths[0]), False, True)
    if not path.is_file():
        raise NSTError(f"{path}: no such video file or folder of frames; pass an .mp4 (or any video) or a folder")
    import imageio_ffmpeg

    streams = _streams(path)
    video_streams = [line for line in streams if " Video: " in line]
    if not streams:
        raise NSTError(
            f"{path} is not a video ffmpeg can open (empty, truncated or another kind of file); "
            "pass an .mp4, .mov, .webm or .avi file, or a folder of frames"
        )
    if not video_streams:
        raise NSTError(f"{path} has no video stream (audio only?), so zero frames; pass a file with a picture track")
    if " Video: none" in video_streams[0]:
        codec = re.search(r"Video: none \(([^)]*)\)", video_streams[0])
        raise NSTError(
            f"{path}: its video codec ({codec.group(1) if codec else 'unknown'}) cannot be decoded by imageio-ffmpeg; "
            "re-encode it, e.g. ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p out.mp4"
        )
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        first = next(reader, None)
        reader.close()
        n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path)) if first is not None else (0, 0.0)
    except (OSError, RuntimeError, StopIteration) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise NSTError(
            f"{path}: its video stream could not be decoded ({reason}); re-encode it, "
            "e.g. ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p out.mp4"
        ) from None
    if n_frames == 0:
        raise NSTError(f"{path} has zero frames that can be decoded; pass a clip with at least one frame")
    width_px, height_px = meta["size"]
    has_audio = any(" Audio: " in line for line in streams)
    return ClipInfo(str(path), int(n_frames), float(meta["fps"]), (height_px, width_px), has_audio, False)


def _stored_size_px(path: Path) -> tuple[int, int]:
    """(height_px, width_px) of an image file as stored, from its header; ImageFileError in one line if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width_px, height_px = image.size
    except OSError:
        load_image(path, max_side_px=None)  # raises the one-line error that says why
        raise
    return height_px, width_px


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frames folder, in name order; NSTError if there are none."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file())
    if not paths:
        kinds = ", ".join(FRAME_SUFFIXES)
        raise NSTError(f"{folder} holds zero frames (no {kinds} files); put the frames there, named in order")
    return paths


def clip_size_px(info: ClipInfo, max_side_px: int) -> tuple[int, int]:
    """(height_px, width_px) of the clip's frames at `max_side_px` on their long side."""
    return fit_to_max_side(*info.size_px, max_side_px)


def frames_memory_bytes(n_frames: int, height_px: int, width_px: int) -> int:
    """Memory the notebook needs for `n_frames` frames at height_px × width_px: each input frame and its result."""
    return int(n_frames) * int(height_px) * int(width_px) * BYTES_PER_FRAME_PIXEL


def check_clip_memory(info: ClipInfo, n_frames: int, size_px: tuple[int, int], model_bytes: int, available: int):
    """NSTError in one line if the frames at `size_px` would not fit beside the model; returns the frames' bytes."""
    needed = frames_memory_bytes(n_frames, *size_px)
    room = int((available - model_bytes) * FRAMES_MEMORY_SHARE)
    if needed <= room:
        return needed
    fitting_frames = max(1, room // max(1, frames_memory_bytes(1, *size_px)))
    raise NSTError(
        f"{info.path}: {n_frames} frames at {size_px[1]}×{size_px[0]} px need about {needed / 1e9:.1f} GB, but "
        f"only {max(room, 0) / 1e9:.1f} GB is free beside the model; use -p max_frames {fitting_frames} "
        "or a smaller -p max_side_px"
    )


def read_frames(path: str | os.PathLike, max_side_px: int, max_frames: int | None = None) -> list[np.ndarray]:
    """The clip's frames as (H, W, 3) float32 in [0, 1], long side `max_side_px`; the first `max_frames` only."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        return [load_image(p, max_side_px=max_side_px) for p in frame_files(path)[:max_frames]]
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width_px, height_px = next(reader)["size"]
    size_px = fit_to_max_side(height_px, width_px, max_side_px)
    frames = []
    for raw in reader:
        if max_frames is not None and len(frames) >= max_frames:
            break
        pixels = np.frombuffer(raw, np.uint8).reshape(height_px, width_px, 3).astype(np.float32) / 255
        frames.append(resize_image(pixels, *size_px))
    reader.close()
    return frames


def write_video(path: Path, frame_paths: Sequence[Path], fps: float, audio_from: str | None = None) -> Path:
    """Encode the frames (PNG files) as an H.264 .mp4 at `fps`, with the audio of `audio_from` (a video) if given.

    Odd sizes are padded by one pixel (H.264 needs even ones); the audio is cut to the frames' length. Atomic.
    """
    import imageio_ffmpeg

    first = load_image(frame_paths[0], max_side_px=None)
    height_px, width_px = first.shape[:2]
    temp_path = path.with_name(f".{path.stem}.partial{path.suffix}")
    output_params = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-crf", "18", "-movflags", "+faststart"]
    if audio_from is not None:
        output_params += ["-shortest"]
    writer = imageio_ffmpeg.write_frames(
        str(temp_path),
        (width_px, height_px),
        fps=fps,
        codec="libx264",
        quality=None,
        macro_block_size=1,
        output_params=output_params,
        audio_path=audio_from,
        audio_codec="aac" if audio_from is not None else None,
    )
    writer.send(None)
    try:
        for frame_path in frame_paths:
            writer.send(np.ascontiguousarray(rgb01_to_uint8(load_image(frame_path, max_side_px=None))))
    finally:
        writer.close()
    os.replace(temp_path, path)
    return path


def write_preview_gif(path: Path, frame_paths: Sequence[Path], fps: float) -> Path:
    """An animated GIF of the frames, long side PREVIEW_SIDE_PX, looping: what a README or a browser shows."""
    from PIL import Image

    size_px = None
    pictures = []
    for frame_path in frame_paths:
        image = load_image(frame_path, max_side_px=None)
        size_px = size_px or fit_to_max_side(*image.shape[:2], PREVIEW_SIDE_PX)
        pictures.append(Image.fromarray(rgb01_to_uint8(resize_image(image, *size_px))))
    duration_ms = round(1000 / fps)
    return write_atomically(
        path,
        lambda file: pictures[0].save(
            file, format="GIF", save_all=True, append_images=pictures[1:], duration=duration_ms, loop=0
        ),
    )


class VideoRunFolder:
    """A video run's folder: frames/frame_NNNN.png and metrics.csv grow one finished frame at a time.

    A frame counts as finished once both its PNG and its metrics row are written, so a run interrupted at any
    moment resumes from the frame after the last finished one (`finished_frames`).
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.frames_dir = self.run_dir / "frames"
        self.metrics_path = self.run_dir / "metrics.csv"
        self.params_path = self.run_dir / "params.json"

    def frame_path(self, index: int) -> Path:
        """Where frame `index` (0-based) is saved."""
        return self.frames_dir / f"frame_{index:04d}.png"

    def rows(self) -> list[dict]:
        """The metrics rows of the finished frames, in order, as numbers (frame and iterations as ints)."""
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open(newline="") as file:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]
        finished = []
        for row in rows:  # contiguous from frame 0, each with its PNG
            index = int(row["frame"])
            if index != len(finished) or not self.frame_path(index).exists():
                break
            finished.append({**row, "frame": index, "iterations": int(row["iterations"])})
        return finished

    def finished_frames(self) -> int:
        """How many frames, from frame 0, are finished (PNG and metrics row)."""
        return len(self.rows())

    def start(self, params: Mapping, resume: bool) -> int:
        """Prepare the folder for a run with `params`; returns the first frame to do (0, or where it stopped).

        Resuming keeps the finished frames and their rows and checks that the settings are those of the first
        part; a new run writes params.json and an empty metrics.csv.
        """
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.params_path.exists():
            check_same_settings(json.loads(self.params_path.read_text()), params, self.run_dir)
            kept = self.rows()
        else:
            kept = []
            write_atomically(self.params_path, lambda f: f.write(json.dumps(dict(params), indent=2).encode()))
        self._rewrite_metrics(kept)
        for stale in self.frames_dir.glob("frame_*.png"):  # a frame saved just before an interrupt, without its row
            if int(stale.stem.split("_")[1]) >= len(kept):
                stale.unlink()
        return len(kept)

    def record(self, index: int, image_rgb01: np.ndarray, row: Mapping) -> None:
        """Save frame `index` (atomically), then append its metrics row and flush it: the frame is finished."""
        save_image(self.frame_path(index), image_rgb01)
        with self.metrics_path.open("a", newline="") as file:
            csv.DictWriter(file, fieldnames=METRICS_FIELDS).writerow({k: row[k] for k in METRICS_FIELDS})
            file.flush()
            os.fsync(file.fileno())

    def finish(self, fps: float, audio_from: str | None) -> tuple[Path, Path]:
        """Write out.mp4 (with the audio of `audio_from`, if any) and preview.gif from every finished frame."""
        paths = [self.frame_path(i) for i in range(self.finished_frames())]
        video = write_video(self.run_dir / "out.mp4", paths, fps, audio_from)
        return video, write_preview_gif(self.run_dir / "preview.gif", paths, fps)

    def _rewrite_metrics(self, rows: list[dict]) -> None:
        def write(file):
            lines = [",".join(METRICS_FIELDS)] + [",".join(str(row[k]) for k in METRICS_FIELDS) for row in rows]
            file.write(("\n".join(lines) + "\n").encode())

        write_atomically(self.metrics_path, write)


# Settings that may differ between the first part of a run and its resumption.
RESUME_MAY_CHANGE = ("resume", "run_dir", "live_view", "output_root", "compare_frames")


def check_same_settings(first: Mapping, now: Mapping, run_dir: Path) -> None:
    """NSTError naming the first setting that differs between a run's params.json and the resumed command."""
    for name in sorted(set(first) | set(now)):
        if name in RESUME_MAY_CHANGE:
            continue
        if first.get(name) != now.get(name):
            raise NSTError(
                f"--resume {run_dir}: {name} was {first.get(name)!r} in that run, now {now.get(name)!r}; "
                "resume with the same command and settings, or start a new run"
            )


def _streams(path: Path) -> list[str]:
    """ffmpeg's description of each stream of `path` ("Stream #0:0: Video: h264 ..."); [] if it cannot open it."""
    import imageio_ffmpeg

    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    return [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("Stream #")]
