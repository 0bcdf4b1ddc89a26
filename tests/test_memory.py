"""nst.memory: the memory estimate grows with the size and the depth, and a size that does not fit is refused."""

import pytest

from nst.errors import NSTError
from nst.memory import check_memory, estimate_memory_bytes


def test_memory_estimate_grows_with_size_and_depth():
    sizes = [(48, 64), (300, 400), (768, 1024), (1080, 1920)]
    estimates = [estimate_memory_bytes(h, w, "conv5_1") for h, w in sizes]
    assert estimates == sorted(estimates) and len(set(estimates)) == len(estimates)
    assert estimate_memory_bytes(300, 400, "conv1_1") < estimate_memory_bytes(300, 400, "conv5_1")
    # Measured (docs/benchmarks.md): with the style's Gram stand-ins, the notebook's kernel peaked at 4.58 GB at
    # 1920×1080 (a short run, fp32) and 17.56 GB at 3840×2160 (the finished default run, bf16).
    assert 4.58e9 <= estimate_memory_bytes(1080, 1920) < 8e9
    assert 17.56e9 <= estimate_memory_bytes(2160, 3840) < 20e9, "3840×2160 must fit a 24 GB machine with room"


def test_lbfgs_needs_its_float64_arrays_on_top():
    # Measured (docs/benchmarks.md): at 1920×1080 L-BFGS peaked at 7.63 and 7.89 GB, Adam at 5.48 GB.
    adam, lbfgs = (estimate_memory_bytes(1080, 1920, optimizer=name) for name in ("adam", "lbfgs"))
    assert lbfgs >= 7.89e9 and 2.0e9 <= lbfgs - adam <= 2.5e9
    # 3840×2160 fits a 24 GB machine with Adam but not with L-BFGS, which is told the size that would.
    available = 24.5e9
    check_memory(2160, 3840, available_bytes=available, optimizer="adam")
    with pytest.raises(NSTError, match=r"3840×2160 px through conv5_1 with L-BFGS needs .* max_side_px=\d+") as err:
        check_memory(2160, 3840, available_bytes=available, optimizer="lbfgs")
    suggested = int(str(err.value).split("max_side_px=")[1].split()[0])
    assert 1920 <= suggested < 3840
    assert estimate_memory_bytes(round(2160 * suggested / 3840), suggested, optimizer="lbfgs") <= available
    with pytest.raises(ValueError, match="optimizer='sgd'"):
        estimate_memory_bytes(300, 400, optimizer="sgd")


def test_style_images_larger_than_the_content_count():
    # Measured (docs/benchmarks.md): 1920×1080 with its style at 3840×2160 (style_scale 2) peaked at 12.10 GB,
    # against 5.48 GB with the style at the content's size (both when the style's activations were kept).
    same = estimate_memory_bytes(1080, 1920)
    assert estimate_memory_bytes(1080, 1920, style_sizes_px=[(1080, 1920)]) == same, "the fit's own case"
    assert estimate_memory_bytes(1080, 1920, style_sizes_px=[(540, 960)]) == same, "a smaller style is in the fit"
    larger = estimate_memory_bytes(1080, 1920, style_sizes_px=[(2160, 3840)])
    assert larger >= 12.10e9 and larger - same > 4e9
    two = estimate_memory_bytes(1080, 1920, style_sizes_px=[(1080, 1920), (1080, 1920)])
    assert two == same, "a second style keeps only its Gram stand-ins, a few MB"


def test_the_advice_shrinks_the_style_with_the_content():
    available = 12e9  # fits 1920×1080 with its style at the same size, not with a style twice as large
    check_memory(1080, 1920, available_bytes=available, style_sizes_px=[(1080, 1920)])
    with pytest.raises(NSTError, match=r"1920×1080 px \(style 3840×2160 px\) through conv5_1 with Adam") as err:
        check_memory(1080, 1920, available_bytes=available, style_sizes_px=[(2160, 3840)])
    assert str(err.value).endswith("or less, or a smaller style_scale"), err.value
    suggested = int(str(err.value).split("max_side_px=")[1].split()[0])
    assert 960 <= suggested < 1920
    h, w = round(1080 * suggested / 1920), suggested
    assert estimate_memory_bytes(h, w, style_sizes_px=[(2 * h, 2 * w)]) <= available


def test_styles_no_larger_than_the_content_are_not_blamed():
    # Two styles at the content's size: what does not fit is the content's size, so a smaller style_scale is no fix.
    with pytest.raises(NSTError, match=r"^1920×1080 px through conv5_1 with Adam needs") as err:
        check_memory(1080, 1920, available_bytes=5e9, style_sizes_px=[(1080, 1920), (1080, 1920)])
    assert str(err.value).endswith("or less"), err.value


def test_memory_estimate_refuses_a_layer_that_is_not_vgg19s():
    with pytest.raises(ValueError, match="deepest_layer='conv6_1' is not a VGG-19 layer"):
        estimate_memory_bytes(300, 400, "conv6_1")


def test_a_size_that_does_not_fit_is_refused_with_a_smaller_max_side():
    available = estimate_memory_bytes(768, 1024)
    assert check_memory(768, 1024, available_bytes=available) == available
    with pytest.raises(NSTError, match=r"4000×3000 px .* needs about .* GB.*max_side_px=\d+") as err:
        check_memory(3000, 4000, available_bytes=available)
    suggested = int(str(err.value).split("max_side_px=")[1].split()[0])
    assert 400 <= suggested <= 1024
    assert estimate_memory_bytes(round(3000 * suggested / 4000), suggested) <= available


def test_the_running_process_counts_what_it_holds_as_available(monkeypatch):
    # The notebook's kernel checks after importing TensorFlow: its own memory is inside the estimate's base.
    import nst.memory

    needed = estimate_memory_bytes(768, 1024)
    monkeypatch.setattr(nst.memory, "_own_resident_bytes", lambda: 2_000_000_000)
    with pytest.raises(NSTError, match="needs about"):
        check_memory(768, 1024, available_bytes=needed - 1_000_000_000)
    assert check_memory(768, 1024, available_bytes=needed - 1_000_000_000, in_running_process=True) == needed
    with pytest.raises(NSTError, match="needs about"):
        check_memory(768, 1024, available_bytes=needed - 3_000_000_000, in_running_process=True)


def test_own_resident_memory_is_measured():
    from nst.memory import _own_resident_bytes

    assert 10_000_000 < _own_resident_bytes() < 100_000_000_000  # a Python process with numpy: tens of MB at least


def test_when_nothing_fits_the_advice_is_to_free_memory():
    with pytest.raises(NSTError, match="free some memory") as err:
        check_memory(300, 400, available_bytes=1)
    assert "\n" not in str(err.value)
