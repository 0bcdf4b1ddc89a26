"""Optical flow between frames, the warp of an image by a flow, and where a flow can be trusted (no TensorFlow).

Flows are float32 arrays (H, W, 2) in pixels, (dx, dy), in OpenCV's convention: `optical_flow(a, b)` is the flow
w with a(x) ≈ b(x + w(x)). So `warp(b, optical_flow(a, b))` moves b onto a: for frame t and its predecessor,
`warp(G_prev, optical_flow(frame_t, frame_prev))` is the previous stylised frame carried to frame t.
The consistency mask follows Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos" (2016), section 3.2.
"""

from __future__ import annotations

import numpy as np

FLOW_METHODS = ("dis", "farneback")
DIS_PATCH_PX = 6
# Ruder et al.'s thresholds, in pixels: a forward-backward round trip may miss by 1 % of the motion plus 0.5 px²
# (disocclusion), and the flow may vary by 1 % of its size plus 0.002 px²/px² between neighbours (motion boundary).
ROUND_TRIP_RELATIVE, ROUND_TRIP_PX2 = 0.01, 0.5
BOUNDARY_RELATIVE, BOUNDARY_PX2 = 0.01, 0.002
# A cut to another shot leaves few pixels trusted (between the two sample images at 256 px: 2 % with DIS, 25 % with
# Farnebäck); camera motion keeps most (a 20 px pan of the sample photo: 94 % and 68 %). Below this share of trusted
# pixels frame t is taken for a new shot, with nothing of frame t−1 worth carrying over (tests/test_video.py).
NEW_SHOT_TRUSTED_FRACTION = 0.4


def optical_flow(frame_a_rgb01: np.ndarray, frame_b_rgb01: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense flow (H, W, 2) in pixels from frame a to frame b, two (H, W, 3) RGB images in [0, 1]: a(x) ≈ b(x + w).

    "dis": OpenCV's DIS (dense inverse search, medium preset, 6 px patches), fast and sharp at motion edges;
    "farneback": Farnebäck's polynomial expansion, smoother.
    """
    import cv2

    grey_a, grey_b = (_grey_uint8(frame) for frame in (frame_a_rgb01, frame_b_rgb01))
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        # 6 px patches (the preset's are 8): the motion of a small object bleeds less into a plain background
        # around it, so the consistency check finds the strip it uncovers (tests/test_video.py)
        dis.setPatchSize(DIS_PATCH_PX)
        dis.setPatchStride(DIS_PATCH_PX // 2)
        flow = dis.calc(grey_a, grey_b, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(
            grey_a, grey_b, None, pyr_scale=0.5, levels=4, winsize=15, iterations=5, poly_n=5, poly_sigma=1.1, flags=0
        )
    else:
        raise ValueError(f"method={method!r}: choose one of {', '.join(FLOW_METHODS)}")
    return np.ascontiguousarray(flow, dtype=np.float32)


def warp(image: np.ndarray, flow_px: np.ndarray) -> np.ndarray:
    """`image` (H, W, C) sampled at x + flow(x), bilinearly; points outside take the nearest edge pixel.

    With flow = optical_flow(a, b), warp(b, flow) ≈ a wherever the flow can be trusted.
    """
    import cv2

    map_x, map_y = _sample_points(flow_px)
    pixels = np.ascontiguousarray(image, dtype=np.float32)
    warped = cv2.remap(pixels, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(pixels.shape)


def consistency_mask(flow_back_px: np.ndarray, flow_forward_px: np.ndarray) -> np.ndarray:
    """c (H, W) float32 in {0, 1} for frame t: 1 where warping frame t−1 by `flow_back_px` can be trusted.

    `flow_back_px` = optical_flow(frame_t, frame_prev) ŵ, `flow_forward_px` = optical_flow(frame_prev, frame_t) w.
    Untrusted (c = 0), as in Ruder et al.: a disocclusion, where the round trip w̃ + ŵ with w̃(x) = w(x + ŵ(x))
    does not come back, |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5; a motion boundary, where the flow changes fast,
    |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002; and a point x + ŵ(x) outside frame t−1.
    """
    back = np.asarray(flow_back_px, dtype=np.float32)
    forward_there = warp(flow_forward_px, back)  # w̃(x) = w(x + ŵ(x))
    round_trip = np.sum((forward_there + back) ** 2, axis=2)
    lengths = np.sum(forward_there**2, axis=2) + np.sum(back**2, axis=2)
    disoccluded = round_trip > ROUND_TRIP_RELATIVE * lengths + ROUND_TRIP_PX2
    d_dy, d_dx = np.gradient(back, axis=(0, 1))  # each (H, W, 2): derivatives of (û, v̂) down and across
    variation = np.sum(d_dx**2 + d_dy**2, axis=2)
    boundary = variation > BOUNDARY_RELATIVE * np.sum(back**2, axis=2) + BOUNDARY_PX2
    map_x, map_y = _sample_points(back)
    height_px, width_px = back.shape[:2]
    outside = (map_x < 0) | (map_x > width_px - 1) | (map_y < 0) | (map_y > height_px - 1)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def is_new_shot(c: np.ndarray) -> bool:
    """Whether the consistency mask c of frame t trusts so few pixels that frame t starts a new shot (a cut)."""
    return float(np.mean(c)) < NEW_SHOT_TRUSTED_FRACTION


def flow_to_rgb(flow_px: np.ndarray, max_px: float | None = None) -> np.ndarray:
    """A flow drawn as colour (H, W, 3) in [0, 1]: hue is the direction, brightness the length (max_px: full)."""
    import cv2

    dx, dy = flow_px[..., 0], flow_px[..., 1]
    length_px, angle_rad = cv2.cartToPolar(dx.astype(np.float32), dy.astype(np.float32))
    full_px = max_px or max(float(length_px.max()), 1e-6)
    hsv = np.zeros((*flow_px.shape[:2], 3), np.float32)
    hsv[..., 0] = np.degrees(angle_rad)  # OpenCV's float hue is in degrees, 0-360
    hsv[..., 1] = 1.0
    hsv[..., 2] = np.clip(length_px / full_px, 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


def _sample_points(flow_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x + flow(x) as two float32 maps (H, W): where warp samples each pixel."""
    height_px, width_px = flow_px.shape[:2]
    grid_y, grid_x = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    return grid_x + flow_px[..., 0], grid_y + flow_px[..., 1]


def _grey_uint8(image_rgb01: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601) of an (H, W, 3) image in [0, 1], as uint8: what OpenCV's flow methods read."""
    pixels = np.asarray(image_rgb01, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"a frame must be an (H, W, 3) RGB array, got shape {pixels.shape}")
    luma = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.rint(np.clip(luma, 0.0, 1.0) * 255).astype(np.uint8)
