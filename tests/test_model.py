"""nst.model: the frozen VGG-19 feature model, checked layer by layer against numpy and raw tf.nn, in fp32 and bf16.

The weights are tiny synthetic files (tests/synthetic_weights.py); reading them is tested in test_weights.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import synthetic_weights as sw
import tensorflow as tf

import nst.model
import nst.weights
from nst.errors import WeightsFileError
from nst.model import bf16_hardware, choose_precision, load_vgg_model
from nst.sources import WEIGHTS_SOURCES
from nst.vgg19 import VGG_MEAN_RGB_255, vgg19_layer_names
from nst.weights import read_vgg19_weights

ALL_NAMES = vgg19_layer_names()
CONV_NAMES = [name for name in ALL_NAMES if name.startswith("conv")]
MAT_NAME = WEIGHTS_SOURCES["matconvnet"].filename


@pytest.fixture(scope="module")
def image():
    """Two 48x40 RGB images in [0, 1], float32: the model's input is a batch (N, H, W, 3)."""
    return np.random.default_rng(1).random((2, 48, 40, 3), dtype=np.float32)


# ---------------------------------------------------------------------------- independent references


def numpy_conv_relu(x, kernel, bias):
    """3x3 'same' convolution then ReLU, by explicit sums over the 9 kernel taps (NHWC, kernel [h, w, in, out])."""
    height, width = x.shape[1:3]
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((*x.shape[:3], kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy : dy + height, dx : dx + width, :] @ kernel[dy, dx].astype(np.float64)
    return np.maximum(out + bias, 0.0)


def numpy_pool(x, mode):
    """2x2 stride-2 average or max pooling, dropping an odd last row/column like 'valid' padding."""
    n, height, width, c = x.shape
    blocks = x[:, : height // 2 * 2, : width // 2 * 2].reshape(n, height // 2, 2, width // 2, 2, c)
    return blocks.mean(axis=(2, 4)) if mode == "avg" else blocks.max(axis=(2, 4))


def tf_nn_features(weights, x, mean_rgb, pooling="avg"):
    """Every VGG-19 layer's activation with raw tf.nn ops (no Keras), for inputs x in [0, 1]."""
    h = tf.constant(x * 255.0 - np.asarray(mean_rgb, np.float32))
    features = {}
    for name in ALL_NAMES:
        if name.startswith("conv"):
            kernel, bias = weights[name]
            h = tf.nn.relu(tf.nn.conv2d(h, kernel, strides=1, padding="SAME") + bias)
        else:
            pool = tf.nn.avg_pool2d if pooling == "avg" else tf.nn.max_pool2d
            h = pool(h, ksize=2, strides=2, padding="VALID")
        features[name] = h.numpy()
    return features


def assert_close(actual, expected, what):
    """Equal up to float32 rounding, relative to the activations' scale."""
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


# ---------------------------------------------------------------------------- model activations


def test_first_block_matches_numpy_for_both_poolings(files, weights, image):
    mean = np.asarray(VGG_MEAN_RGB_255)
    conv1_1 = numpy_conv_relu(image * 255.0 - mean, *weights["conv1_1"])
    conv1_2 = numpy_conv_relu(conv1_1, *weights["conv1_2"])
    for pooling in ("avg", "max"):
        model = load_vgg_model(files["current"], pooling=pooling, output_layers=["conv1_1", "conv1_2", "pool1"])
        out = model(image)
        assert_close(out["conv1_1"].numpy(), conv1_1, "conv1_1 vs numpy")
        assert_close(out["conv1_2"].numpy(), conv1_2, "conv1_2 vs numpy")
        assert_close(out["pool1"].numpy(), numpy_pool(conv1_2, pooling), f"pool1 ({pooling}) vs numpy")
    assert not np.allclose(numpy_pool(conv1_2, "avg"), numpy_pool(conv1_2, "max"))  # the check can tell them apart


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_every_layer_matches_tf_nn_reference(files, weights, image, pooling):
    out = load_vgg_model(files["current"], pooling=pooling)(image)
    expected = tf_nn_features(weights, image, VGG_MEAN_RGB_255, pooling)
    assert list(out) == list(ALL_NAMES)
    for name in ALL_NAMES:
        assert_close(out[name].numpy(), expected[name], f"{name} ({pooling}) vs tf.nn")


def test_old_mat_current_mat_and_h5_give_the_same_activations(files, image):
    outs = {which: load_vgg_model(path)(image) for which, path in files.items()}
    for name in ALL_NAMES:
        for which in ("old", "h5"):
            assert_close(outs[which][name].numpy(), outs["current"][name].numpy(), f"{name}: {which} vs current .mat")


def test_mean_pixel_from_the_file_is_subtracted(tmp_path, weights, image):
    path = sw.write_matconvnet_mat(tmp_path / "mean.mat", weights, mean_rgb=(100.0, 110.0, 120.0))
    out = load_vgg_model(path, output_layers=["conv1_1"])(image)
    expected = numpy_conv_relu(image * 255.0 - np.array([100.0, 110.0, 120.0]), *weights["conv1_1"])
    assert_close(out["conv1_1"].numpy(), expected, "conv1_1 with the file's mean pixel")


def test_smallest_and_non_square_inputs_reach_pool5(files):
    model = load_vgg_model(files["h5"], output_layers=["conv5_4", "pool5"])
    out = model(np.zeros((1, 32, 32, 3), np.float32))
    assert out["conv5_4"].shape == (1, 2, 2, 32) and out["pool5"].shape == (1, 1, 1, 32)
    out = model(np.zeros((1, 48, 40, 3), np.float32))
    assert out["conv5_4"].shape == (1, 3, 2, 32) and out["pool5"].shape == (1, 1, 1, 32)


def test_model_is_frozen_float32_and_differentiable_in_tf_function(files, image):
    model = load_vgg_model(files["current"], output_layers=["conv2_1"])
    assert model.trainable_weights == [] and all(not layer.trainable for layer in model.layers)

    @tf.function
    def input_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(model(x)["conv2_1"])
        return tape.gradient(loss, x)

    gradient = input_gradient(tf.constant(image))
    assert gradient.shape == image.shape and gradient.dtype == tf.float32
    assert float(tf.reduce_max(tf.abs(gradient))) > 0.0


# ---------------------------------------------------------------------------- layer selection and arguments


def test_asking_for_conv4_2_builds_nothing_deeper(files, monkeypatch):
    asked = []
    real_reader = nst.weights.read_vgg19_weights

    def spy_reader(path, verify_checksum=True, conv_names=None):
        asked.append(list(conv_names))
        return real_reader(path, verify_checksum, conv_names)

    monkeypatch.setattr(nst.weights, "read_vgg19_weights", spy_reader)  # what resolve_weights calls
    model = load_vgg_model(files["current"], output_layers=["conv4_2"])
    assert asked == [CONV_NAMES[: CONV_NAMES.index("conv4_2") + 1]]  # only conv1_1 ... conv4_2 are loaded
    built = {layer.name for layer in model.layers}
    assert {"conv4_1", "conv4_2", "pool3"} <= built
    assert not built & {"conv4_3", "conv4_4", "pool4", "conv5_1", "conv5_2", "conv5_3", "conv5_4", "pool5"}
    assert set(model(np.zeros((1, 32, 32, 3), np.float32))) == {"conv4_2"}
    # weights for conv1_1 ... conv4_2 alone are enough
    partial = read_vgg19_weights(files["current"], conv_names=CONV_NAMES[: CONV_NAMES.index("conv4_2") + 1])
    assert set(load_vgg_model(partial, output_layers=["conv4_2"]).output) == {"conv4_2"}


def test_output_keys_equal_the_request(files):
    request = ["conv3_1", "pool1", "conv1_1"]
    out = load_vgg_model(files["h5"], output_layers=request)(np.zeros((1, 32, 32, 3), np.float32))
    assert set(out) == set(request)


def test_unknown_layer_name_lists_the_valid_ones(files):
    with pytest.raises(ValueError, match="conv5_4") as info:
        load_vgg_model(files["h5"], output_layers=["conv1_1", "relu1_1"])
    assert "relu1_1" in str(info.value) and "pool5" in str(info.value)


def test_unknown_pooling_is_refused(files):
    with pytest.raises(ValueError, match="avg"):
        load_vgg_model(files["h5"], pooling="median")


def test_summary_and_attributes_name_the_weights(files, capsys):
    model = load_vgg_model(files["old"], output_layers=["conv1_1"])
    assert model.weights_kind == "matconvnet-mat"
    assert model.weights_source == f"MatConvNet .mat (old release): {files['old']}"
    lines = []
    model.summary(print_fn=lines.append)
    assert model.weights_source in "\n".join(lines)
    model.summary()
    assert model.weights_source in capsys.readouterr().out


# ---------------------------------------------------------------------------- the weights argument


def test_empty_directory_falls_back_to_seeded_random_weights(tmp_path, image, capsys):
    model = load_vgg_model(tmp_path, output_layers=["conv1_2"])
    notice = capsys.readouterr().out
    assert "random" in notice and "python nst_utils.py download" in notice and len(notice.strip().splitlines()) <= 2
    assert model.weights_kind == "random" and "random" in model.weights_source and "seed 0" in model.weights_source
    again = load_vgg_model(tmp_path, output_layers=["conv1_2"])
    np.testing.assert_array_equal(model(image)["conv1_2"], again(image)["conv1_2"])
    other_seed = load_vgg_model(tmp_path, output_layers=["conv1_2"], seed=1)
    assert not np.allclose(model(image)["conv1_2"], other_seed(image)["conv1_2"])


def test_none_under_nst_weights_random_builds_random_features_without_a_request(weights_server, monkeypatch, capsys):
    monkeypatch.setenv("NST_WEIGHTS", "random")  # what the tests' and CI's environment sets (tests/ci_sizes.py)
    assert load_vgg_model(None, output_layers=["conv1_1"]).weights_kind == "random"
    assert "not pretrained" in capsys.readouterr().out
    assert weights_server.requests == 0


def test_explicit_random_prints_the_notice(capsys):
    model = load_vgg_model("random", output_layers=["conv1_1"], seed=3)
    assert model.weights_kind == "random" and "seed 3" in model.weights_source
    assert "python nst_utils.py download" in capsys.readouterr().out


def test_verify_checksum_reaches_the_reader(tmp_path, weights):
    sw.write_matconvnet_mat(tmp_path / MAT_NAME, weights)  # the published name, but not the published bytes
    with pytest.raises(WeightsFileError, match="md5") as info:
        load_vgg_model(tmp_path, output_layers=["conv1_1"])
    assert "\n" not in str(info.value) and MAT_NAME in str(info.value)
    assert load_vgg_model(tmp_path, output_layers=["conv1_1"], verify_checksum=False).weights_kind == "matconvnet-mat"


def test_a_bad_file_is_the_readers_one_line_error(tmp_path):
    path = sw.write_html(tmp_path / "page.mat")
    with pytest.raises(WeightsFileError, match="web page") as info:
        load_vgg_model(path, output_layers=["conv1_1"])
    assert "\n" not in str(info.value) and path.name in str(info.value)


# ---------------------------------------------------------------------------- precision: fp32, bf16, auto


def _hardware(fast: bool):
    """A stand-in for bf16_hardware(): this machine runs bf16 natively (fast) or emulates it."""
    reason = "GPU found: bf16 runs on its tensor cores" if fast else "no bf16 speed-up on this CPU (emulated)"
    return lambda: (fast, reason)


def test_bf16_runs_the_convolutions_in_bfloat16_and_returns_float32(files, image):
    fp32_model = load_vgg_model(files["h5"], output_layers=["conv2_1"])
    bf16_model = load_vgg_model(files["h5"], output_layers=["conv2_1"], precision="bf16")
    assert fp32_model.precision == "fp32" and bf16_model.precision == "bf16"
    assert fp32_model.get_layer("conv2_1").compute_dtype == "float32"
    conv = bf16_model.get_layer("conv2_1")
    assert conv.dtype_policy.name == "mixed_bfloat16" and conv.compute_dtype == "bfloat16"
    assert conv.variable_dtype == "float32", "mixed precision keeps the weights in float32"
    assert bf16_model.get_layer("rgb255_minus_mean").compute_dtype == "float32", "255 x - mean must stay float32"
    float32 = fp32_model(image)["conv2_1"].numpy()
    bfloat16 = bf16_model(image)["conv2_1"]
    assert bfloat16.dtype == tf.float32, "bf16 activations must come back as float32 for the Gram matrices"
    np.testing.assert_allclose(bfloat16.numpy(), float32, atol=0.03 * np.abs(float32).max())
    assert not np.array_equal(bfloat16.numpy(), float32), "identical to fp32: the bf16 policy did not reach the layers"


def test_bf16_model_gives_finite_outputs_close_to_fp32():
    image = np.random.default_rng(4).random((1, 48, 64, 3)).astype(np.float32)
    layers = ["conv1_1", "conv3_1", "conv4_2"]
    fp32 = load_vgg_model(weights="random", output_layers=layers, precision="fp32")(image)
    # Was: pytest.warns(UserWarning, match="no bf16 speed-up") around load_vgg_model_at_precision("bf16") where the
    # hardware has no native bf16. The new API puts that warning in choose_precision's reason instead.
    precision, reason = choose_precision("bf16")
    assert precision == "bf16"
    if not bf16_hardware()[0]:
        assert "no bf16 speed-up" in reason, reason
    bf16_model = load_vgg_model(weights="random", output_layers=layers, precision="bf16")
    bf16 = bf16_model(image)
    for name in layers:
        assert bf16[name].dtype == tf.float32, "bf16 activations must come back as float32 for the Gram matrices"
        assert np.isfinite(bf16[name].numpy()).all()
        relative = np.linalg.norm(bf16[name] - fp32[name]) / np.linalg.norm(fp32[name])
        assert relative < 0.03, f"{name}: bf16 differs from fp32 by {relative:.3%}"


def test_choose_precision_fp32_never_asks_the_hardware(monkeypatch):
    def no_call():
        raise AssertionError("fp32 was asked for: the hardware need not be probed")

    monkeypatch.setattr(nst.model, "bf16_hardware", no_call)
    assert choose_precision("fp32") == ("fp32", "fp32 as asked")


@pytest.mark.parametrize(
    ("precision", "fast", "chosen", "words"),
    [
        ("auto", True, "bf16", ["precision auto: bf16", "GPU found"]),
        ("auto", False, "fp32", ["precision auto: fp32", "no bf16 speed-up"]),
        ("bf16", True, "bf16", ["bf16 as asked"]),
        ("bf16", False, "bf16", ["bf16 as asked, but slower here", "no bf16 speed-up"]),
    ],
)
def test_choose_precision_follows_the_hardware(monkeypatch, precision, fast, chosen, words):
    monkeypatch.setattr(nst.model, "bf16_hardware", _hardware(fast))
    got, reason = choose_precision(precision)
    assert got == chosen
    for word in words:
        assert word in reason, reason
    assert "\n" not in reason


@pytest.mark.parametrize("fast", [True, False])
def test_auto_precision_keeps_lbfgs_in_fp32(monkeypatch, fast):
    # L-BFGS fits bf16's rounding error (docs/benchmarks.md): "auto" gives it fp32 even where bf16 is native, and
    # says why; asked for explicitly, bf16 is still given.
    monkeypatch.setattr(nst.model, "bf16_hardware", _hardware(fast))
    got, reason = choose_precision("auto", optimizer="lbfgs")
    assert got == "fp32"
    assert ("fp32 for L-BFGS" in reason) == fast, reason
    assert choose_precision("auto", optimizer="adam")[0] == ("bf16" if fast else "fp32")
    assert choose_precision("bf16", optimizer="lbfgs")[0] == "bf16"


def test_auto_precision_builds_the_model_the_hardware_suits(monkeypatch):
    for fast, chosen, compute_dtype in ((True, "bf16", "bfloat16"), (False, "fp32", "float32")):
        monkeypatch.setattr(nst.model, "bf16_hardware", _hardware(fast))
        model = load_vgg_model("random", output_layers=["conv1_1"], precision="auto")
        assert model.precision == chosen
        assert model.get_layer("conv1_1").compute_dtype == compute_dtype


@pytest.mark.parametrize("bad", ["fp16", "float32", "mixed_bfloat16", None])
def test_unknown_precision_is_refused_naming_the_choices(bad):
    with pytest.raises(ValueError, match=r"precision=.*'auto', 'fp32', 'bf16'") as info:
        choose_precision(bad)
    assert repr(bad) in str(info.value)
    with pytest.raises(ValueError, match="choose one of"):
        load_vgg_model("random", output_layers=["conv1_1"], precision=bad)


def test_bf16_hardware_matches_the_gpus_and_cpu_flags():
    # Independent reading of the same facts: a GPU, or the CPU flags oneDNN needs for native bf16.
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags_line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    native_cpu = bool({"avx512_bf16", "amx_bf16"} & set(flags_line.split()))
    expected = bool(tf.config.list_physical_devices("GPU")) or native_cpu
    fast, reason = bf16_hardware()
    assert fast is expected, reason
    assert reason and "\n" not in reason


def test_bf16_hardware_says_a_gpu_is_fast(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["/physical_device:GPU:0"])
    assert bf16_hardware() == (True, "GPU found: bf16 runs on its tensor cores")
