"""Film images/sample_clip.mp4: a slow pan and zoom over the sample photo, 24 frames at 256×192 px (deterministic).

Run from the repository root:  python images/make_sample_clip.py
Made only from content_raccoon.jpg (public domain), so the repository may carry it. Needs numpy, Pillow and
imageio-ffmpeg (its own ffmpeg binary). The camera moves steadily, 2 to 3 px a frame at 256 px: enough motion for the
optical flow to matter, little enough for it to be measured reliably.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES_DIR = Path(__file__).resolve().parent
CONTENT_PATH = IMAGES_DIR / "content_raccoon.jpg"
OUTPUT_PATH = IMAGES_DIR / "sample_clip.mp4"
WIDTH_PX, HEIGHT_PX = 256, 192  # size of each frame (multiples of 16: what H.264 players expect)
N_FRAMES = 24
FPS = 12  # two seconds of film
# The camera's window on the 1024×768 photo, in photo pixels: (left, top, width) at the first and the last frame.
# Height follows from the 4:3 aspect. It pans right and down while zooming in from 640 to 512 px wide.
WINDOW_START = (120.0, 60.0, 640.0)
WINDOW_END = (300.0, 150.0, 512.0)
CRF = 20  # H.264 quality (lower: better); 20 keeps the file around 100 KB


def frame_at(photo: Image.Image, t01: float) -> np.ndarray:
    """The frame at time t01 in [0, 1]: the window between start and end, resized to WIDTH_PX × HEIGHT_PX."""
    left, top, width = (a + (b - a) * t01 for a, b in zip(WINDOW_START, WINDOW_END, strict=True))
    height = width * HEIGHT_PX / WIDTH_PX
    box = (left, top, left + width, top + height)
    return np.asarray(photo.resize((WIDTH_PX, HEIGHT_PX), Image.Resampling.LANCZOS, box=box))


def main() -> None:
    import imageio_ffmpeg

    photo = Image.open(CONTENT_PATH).convert("RGB")
    writer = imageio_ffmpeg.write_frames(
        str(OUTPUT_PATH),
        (WIDTH_PX, HEIGHT_PX),
        fps=FPS,
        codec="libx264",
        quality=None,
        output_params=["-crf", str(CRF), "-preset", "veryslow", "-tune", "film", "-movflags", "+faststart"],
    )
    writer.send(None)  # start ffmpeg
    for index in range(N_FRAMES):
        writer.send(np.ascontiguousarray(frame_at(photo, index / (N_FRAMES - 1))))
    writer.close()
    print(f"wrote {OUTPUT_PATH} ({OUTPUT_PATH.stat().st_size / 1024:.0f} KB, {N_FRAMES} frames at {FPS} fps)")


if __name__ == "__main__":
    sys.exit(main())
