"""Clips in and out: check and read a video, a folder of frames or a still image; a video run's folder. No TensorFlow.

Video I/O is imageio-ffmpeg, whose wheel ships its own ffmpeg binary: no system ffmpeg is needed. Frames are
(H, W, 3) float32 RGB in [0, 1], resized with nst.images.resize_image, sizes (height_px, width_px).
A video run's folder holds frames/frame_NNNN.png (each written whole, once its frame is finished), metrics.csv
(one row per finished frame), params.json, and at the end out.mp4 and preview.gif.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nst.errors import NSTError
from nst.images import (
    fit_to_max_side,
    load_image,
    resize_image,
    rgb01_to_uint8,
    save_image,
    upright_size_px,
    vgg_size_px,
    write_atomically,
)

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_FPS = 12.0  # frames per second of a folder of frames (or a still image), which carries none
# How every video file is decoded, when it is checked and when it is read, so both count the same frames: its first
# picture track (not a cover picture), one frame per tick of its frame rate, as out.mp4 will play them.
DECODE_OPTIONS = ("-map", "0:V:0", "-fps_mode", "cfr")
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
_RE_ENCODE = "re-encode it, e.g. ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p out.mp4"


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """A clip as probe_clip checked it, and how read_frames reads it."""

    path: str
    n_frames: int  # the frames to stylise: every frame that decodes, or the first max_frames of them
    fps: float  # frames per second (FOLDER_FPS for a folder of frames or a still image)
    size_px: tuple[int, int]  # (height_px, width_px) of every frame as read: the first frame's, at max_side_px
    has_audio: bool
    frame_paths: tuple[str, ...] = ()  # a folder's frames (or the one still image), in order; () for a video file
    notes: tuple[str, ...] = ()  # "note: …" lines for what the run does that was not asked (say each once)


def probe_clip(path: str | os.PathLike, max_side_px: int, max_frames: int | None = None) -> ClipInfo:
    """Check a clip whole before a run: a video file, a folder of frames named in order, or one still image.

    Every frame to stylise (the first `max_frames`, or all) is decoded once; the size every frame is read at is the
    first frame's at `max_side_px`. NSTError in one line, naming the file, if the clip cannot be used; a frame of
    another shape (resized) or a video cut short (its decodable frames used) is a note in `notes` instead.
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        return _probe_images(path, frame_files(path), max_side_px, max_frames)
    if not path.is_file():
        if path.is_symlink() and not path.exists():
            raise NSTError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; fix or remove it")
        if path.exists():
            raise NSTError(f"{path} is not a regular file (a device, pipe or socket); pass a video file or a folder")
        raise NSTError(f"{path}: no such video file or folder of frames; pass an .mp4 (or any video) or a folder")
    if _is_still_image(path):
        note = (
            f"note: {path.name} is a still image: it is stylised as a one-frame clip (`python nst_utils.py stylise "
            f"--content {path}` would show the whole optimisation)"
        )
        return dataclasses.replace(_probe_images(path, [path], max_side_px, 1), notes=(note,))
    return _probe_video(path, max_side_px, max_frames)


def _probe_images(source: Path, paths: Sequence[Path], max_side_px: int, max_frames: int | None) -> ClipInfo:
    """A folder's frames (or one still image): each decoded once; a frame of another shape is resized (noted)."""
    paths = list(paths)[:max_frames]
    sizes_px = []
    for path in paths:
        try:
            sizes_px.append(load_image(path, max_side_px=max_side_px).shape[:2])
        except NSTError as err:
            where = f" (a frame of {source}: fix it, or move it out of the folder)" if source.is_dir() else ""
            raise NSTError(f"{err}{where}") from None
    notes = []
    differing = [path for path, size_px in zip(paths, sizes_px, strict=True) if size_px != sizes_px[0]]
    if differing:
        (first_h, first_w), (odd_h, odd_w) = upright_size_px(paths[0]), upright_size_px(differing[0])
        odd = f"{differing[0].name} ({odd_w}×{odd_h} px)"
        who = (
            f"{odd} has" if len(differing) == 1 else f"{len(differing)} of the {len(paths)} frames (from {odd} on) have"
        )
        height_px, width_px = sizes_px[0]
        notes.append(
            f"note: {who} another shape than the first frame ({paths[0].name}, {first_w}×{first_h} px): every frame "
            f"is resized to the first frame's {width_px}×{height_px} px"
        )
    return ClipInfo(str(source), len(paths), FOLDER_FPS, sizes_px[0], False, tuple(map(str, paths)), tuple(notes))


def _is_still_image(path: Path) -> bool:
    """Whether `path` is a picture Pillow opens as one frame (a photo), not a video or an animation."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) == 1
    except UnidentifiedImageError:
        return False  # a video, or no picture at all: ffmpeg says which
    except Exception:  # an image Pillow refuses (too large, unreadable): nst.images says why in one line
        return True


def _probe_video(path: Path, max_side_px: int, max_frames: int | None) -> ClipInfo:
    """A video file: its picture track decoded once (the first max_frames frames), as read_frames will read it."""
    streams = _streams(path)
    video_streams = [line for line in streams if " Video: " in line and "(attached pic)" not in line]
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
            + _RE_ENCODE
        )
    n_frames, complaints = _decoded_frames(path, max_frames)
    if n_frames == 0:
        said = f" (ffmpeg: {complaints[0]}): it is cut short or damaged" if complaints else ""
        raise NSTError(
            f"{path} has zero frames that can be decoded{said}; download or export it again, or pass a clip with at "
            "least one frame"
        )
    meta = _video_meta(path)
    width_px, height_px = meta["size"]  # upright: ffmpeg applies a phone's rotation
    size_px = vgg_size_px(path, height_px, width_px, max_side_px)
    notes = []
    if complaints and (max_frames is None or n_frames < max_frames):  # fewer frames than asked for
        promised = round(float(meta.get("duration") or 0) * float(meta["fps"]))
        of = f" of the {promised} its header promises" if promised > n_frames and max_frames is None else ""
        notes.append(
            f"note: {path.name} may be cut short or damaged (ffmpeg: {complaints[0]}): "
            f"{n_frames} frame{'s decode' if n_frames > 1 else ' decodes'}{of}, and only "
            f"{'those are' if n_frames > 1 else 'that one is'} stylised; download or export it again for the whole clip"
        )
    has_audio = any(" Audio: " in line for line in streams)
    return ClipInfo(str(path), n_frames, float(meta["fps"]), size_px, has_audio, (), tuple(notes))


def _video_meta(path: Path) -> dict:
    """imageio-ffmpeg's description of the picture track: size (upright), fps, duration; NSTError if unreadable."""
    import imageio_ffmpeg

    try:
        with _quiet_imageio():
            reader = imageio_ffmpeg.read_frames(str(path), output_params=list(DECODE_OPTIONS))
            meta = next(reader)
        reader.close()
    except (OSError, RuntimeError, StopIteration) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise NSTError(
            f"{path}: its video stream could not be decoded ({reason}), so it may be cut short or damaged; "
            f"download or export it again, or {_RE_ENCODE}"
        ) from None
    return meta


def _decoded_frames(path: Path, max_frames: int | None) -> tuple[int, list[str]]:
    """How many frames ffmpeg decodes from `path` (at most max_frames), and what it complained of on the way."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-progress", "pipe:1"]
    command += ["-i", str(path), *DECODE_OPTIONS]
    command += ["-frames:v", str(max_frames)] if max_frames else []
    done = subprocess.run([*command, "-f", "null", "-"], capture_output=True, text=True, errors="replace")
    counts = re.findall(r"^frame=(\d+)", done.stdout, re.MULTILINE)
    # "[h264 @ 0x55d…] Invalid NAL unit size (…)" → "Invalid NAL unit size (…)"
    lines = (re.sub(r"^(\[[^]]* @ 0x[0-9a-f]+\]\s*)+", "", line.strip()) for line in done.stderr.splitlines())
    complaints = [" ".join(line.split()).rstrip(".") for line in lines if line]
    return (int(counts[-1]) if counts else 0), complaints


@contextlib.contextmanager
def _quiet_imageio():
    """imageio-ffmpeg logs a warning for every rotated clip (a phone's portrait video), which is expected here."""
    logger = logging.getLogger("imageio_ffmpeg")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frames folder, in name order (hidden ones, such as macOS's ._ files, left out); NSTError
    if there are none or the folder cannot be listed."""
    folder = Path(folder)
    try:
        names = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")]
    except OSError as err:
        raise NSTError(f"{folder} cannot be read ({err.strerror or err}); check its permissions") from None
    paths = sorted(p for p in names if p.is_file())
    if not paths:
        kinds = ", ".join(FRAME_SUFFIXES)
        raise NSTError(f"{folder} holds zero frames (no {kinds} files); put the frames there, named in order")
    return paths


def frames_memory_bytes(n_frames: int, height_px: int, width_px: int) -> int:
    """Memory the notebook needs for `n_frames` frames at height_px × width_px: each input frame and its result."""
    return int(n_frames) * int(height_px) * int(width_px) * BYTES_PER_FRAME_PIXEL


def check_clip_memory(clip: ClipInfo, model_bytes: int, available: int) -> int:
    """NSTError in one line if the clip's frames would not fit beside the model; returns the frames' bytes."""
    needed = frames_memory_bytes(clip.n_frames, *clip.size_px)
    room = int((available - model_bytes) * FRAMES_MEMORY_SHARE)
    if needed <= room:
        return needed
    fitting_frames = max(1, room // max(1, frames_memory_bytes(1, *clip.size_px)))
    height_px, width_px = clip.size_px
    raise NSTError(
        f"{clip.path}: {clip.n_frames} frames at {width_px}×{height_px} px need about {needed / 1e9:.1f} GB, but "
        f"only {max(room, 0) / 1e9:.1f} GB is free beside the model; use -p max_frames {fitting_frames} "
        "or a smaller -p max_side_px"
    )


def read_frames(clip: ClipInfo) -> list[np.ndarray]:
    """The clip's frames as probe_clip checked them: clip.n_frames (H, W, 3) float32 arrays in [0, 1] of
    clip.size_px each (a frame of another shape is resized to it)."""
    if clip.frame_paths:
        frames = [load_image(path, max_side_px=max(clip.size_px)) for path in clip.frame_paths[: clip.n_frames]]
        return [frame if frame.shape[:2] == clip.size_px else resize_image(frame, *clip.size_px) for frame in frames]
    import imageio_ffmpeg

    with _quiet_imageio():
        reader = imageio_ffmpeg.read_frames(clip.path, output_params=list(DECODE_OPTIONS))
        stored_w, stored_h = next(reader)["size"]
    frames = []
    try:
        for raw in reader:
            if len(frames) >= clip.n_frames:
                break
            pixels = np.frombuffer(raw, np.uint8).reshape(stored_h, stored_w, 3).astype(np.float32) / 255
            frames.append(resize_image(pixels, *clip.size_px))
    finally:
        reader.close()
    return frames


def write_video(path: Path, frame_paths: Sequence[Path], fps: float, audio_from: str | None = None) -> Path:
    """Encode the frames (PNG files) as an H.264 .mp4 at `fps`, with the audio of `audio_from` (a video) if given.

    Odd sizes are padded by one pixel (H.264 needs even ones); the audio is cut to the frames' length (never a frame
    to the audio's: AAC ends up to a few ms short of the picture). Atomic.
    """
    import imageio_ffmpeg

    first = load_image(frame_paths[0], max_side_px=None)
    height_px, width_px = first.shape[:2]
    temp_path = path.with_name(f".{path.stem}.partial{path.suffix}")
    output_params = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-crf", "18", "-movflags", "+faststart"]
    if audio_from is not None:
        output_params += ["-t", f"{len(frame_paths) / fps:.6f}"]  # every frame; the sound up to the last one's end
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
