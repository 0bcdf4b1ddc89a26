"""nst.memory: the memory estimate grows with the size and the depth, and a size that does not fit is refused."""

import pytest

from nst.errors import NSTError
from nst.memory import check_memory, estimate_memory_bytes


def test_memory_estimate_grows_with_size_and_depth():
    sizes = [(48, 64), (300, 400), (768, 1024), (1080, 1920)]
    estimates = [estimate_memory_bytes(h, w, "conv5_1") for h, w in sizes]
    assert estimates == sorted(estimates) and len(set(estimates)) == len(estimates)
    assert estimate_memory_bytes(300, 400, "conv1_1") < estimate_memory_bytes(300, 400, "conv5_1")
    assert estimate_memory_bytes(1080, 1920) < 8e9, "1920×1080 peaked at 6.5 GB"
    assert estimate_memory_bytes(2160, 3840) < 21e9, "3840×2160 must fit a 24 GB machine"


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


def test_when_nothing_fits_the_advice_is_to_free_memory():
    with pytest.raises(NSTError, match="free some memory") as err:
        check_memory(300, 400, available_bytes=1)
    assert "\n" not in str(err.value)
