"""Weights files and the VGG-19 feature model, checked on tiny synthetic files against independent references."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
import synthetic_weights as sw
import tensorflow as tf

import nst_utils
from nst_utils import WEIGHTS_SOURCES, WeightsFileError, load_vgg_model, read_vgg19_weights, vgg19_layer_names

ALL_NAMES = vgg19_layer_names()
CONV_NAMES = [name for name in ALL_NAMES if name.startswith("conv")]
MAT_NAME = WEIGHTS_SOURCES["matconvnet"].filename
H5_NAME = WEIGHTS_SOURCES["keras"].filename


@pytest.fixture(scope="module")
def weights():
    """Tiny VGG-19 weights (4, 8, 16, 32, 32 channels), RGB order."""
    return sw.make_weights(seed=0, widths_divisor=16)


@pytest.fixture(scope="module")
def files(tmp_path_factory, weights):
    """The same tiny weights as current .mat, old .mat and Keras .h5, under names the checksum check skips."""
    folder = tmp_path_factory.mktemp("weights")
    return {
        "current": sw.write_matconvnet_mat(folder / "current.mat", weights, release="current"),
        "old": sw.write_matconvnet_mat(folder / "old.mat", weights, release="old"),
        "h5": sw.write_keras_h5(folder / "keras.h5", weights),
    }


@pytest.fixture(scope="module")
def image():
    """Two 48x40 RGB images in [0, 1], float32."""
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


# ---------------------------------------------------------------------------- synthetic files are faithful


def test_synthetic_current_mat_has_the_published_layout(files):
    mat = scipy.io.loadmat(files["current"])
    assert {key for key in mat if not key.startswith("__")} == {"layers", "meta"}
    layers = mat["layers"]
    assert layers.shape == (1, 43) and layers[0, 0].shape == (1, 1)
    conv, relu, pool = layers[0, 0][0, 0], layers[0, 1][0, 0], layers[0, 4][0, 0]
    assert conv.dtype.names == ("name", "type", "weights", "size", "pad", "stride", "precious", "dilate", "opts")
    assert relu.dtype.names == ("name", "type", "leak", "precious")
    assert pool.dtype.names == ("name", "type", "method", "pool", "stride", "pad", "precious", "opts")
    assert conv["weights"].shape == (1, 2) and conv["weights"][0, 1].shape == (4, 1)  # bias (K, 1)
    assert conv["weights"][0, 0].shape == (3, 3, 3, 4) and conv["weights"][0, 0].dtype == np.float32
    names = [layers[0, i][0, 0]["name"][0] for i in range(43)]
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"] and names[-6:] == [
        "fc6", "relu6", "fc7", "relu7", "fc8", "prob"
    ]  # fmt: skip
    assert layers[0, 37][0, 0]["type"][0] == "conv"  # fc6 is typed 'conv' too
    assert mat["meta"][0, 0]["normalization"][0, 0]["averageImage"].shape == (1, 1, 3)


def test_synthetic_old_mat_has_the_published_layout(files):
    mat = scipy.io.loadmat(files["old"])
    assert {key for key in mat if not key.startswith("__")} == {"layers", "classes", "normalization"}
    layers = mat["layers"]
    assert layers.shape == (1, 43)
    conv, relu, pool = layers[0, 0][0, 0], layers[0, 1][0, 0], layers[0, 4][0, 0]
    assert conv.dtype.names == ("weights", "pad", "type", "name", "stride")
    assert relu.dtype.names == ("type", "name")
    assert pool.dtype.names == ("name", "stride", "pad", "type", "method", "pool")
    assert conv["weights"][0, 1].shape == (1, 4)  # bias (1, K)
    assert mat["normalization"][0, 0]["averageImage"].shape == (224, 224, 3)


def test_synthetic_h5_has_the_published_layout(files):
    with h5py.File(files["h5"], "r") as file:
        layer_names = [name.decode() for name in file.attrs["layer_names"]]
        assert layer_names[:3] == ["block1_conv1", "block1_conv2", "block1_pool"] and layer_names[-1] == "block5_pool"
        assert len(layer_names) == 21
        assert [n.decode() for n in file["block1_conv1"].attrs["weight_names"]] == [
            "block1_conv1_W_1:0",
            "block1_conv1_b_1:0",
        ]
        assert file["block3_conv4"]["block3_conv4_W_1:0"].shape == (3, 3, 16, 16)
        assert file["block3_conv4"]["block3_conv4_b_1:0"].shape == (16,)
        assert len(file["block2_pool"].attrs["weight_names"]) == 0


# ---------------------------------------------------------------------------- reading


@pytest.mark.parametrize("which", ["current", "old", "h5"])
def test_reader_returns_the_written_rgb_weights(files, weights, which):
    read = read_vgg19_weights(files[which])
    assert set(read.kernels) == set(CONV_NAMES)
    for name in CONV_NAMES:
        np.testing.assert_array_equal(read.kernels[name], weights[name][0], err_msg=f"{which} {name} kernel")
        np.testing.assert_array_equal(read.biases[name], weights[name][1], err_msg=f"{which} {name} bias")
    np.testing.assert_allclose(read.mean_rgb_255, nst_utils.VGG_MEAN_RGB_255, rtol=1e-6)
    assert read.kind == ("keras-h5" if which == "h5" else "matconvnet-mat")
    assert str(files[which]) in read.source


@pytest.mark.parametrize("release", ["current", "old"])
def test_mat_mean_pixel_is_read_from_the_file(tmp_path, weights, release):
    path = sw.write_matconvnet_mat(tmp_path / "mean.mat", weights, release=release, mean_rgb=(100.0, 110.0, 120.0))
    np.testing.assert_allclose(read_vgg19_weights(path).mean_rgb_255, [100.0, 110.0, 120.0], rtol=1e-6)


def test_reader_loads_only_the_convs_asked_for(files):
    read = read_vgg19_weights(files["h5"], conv_names=["conv1_1", "conv1_2"])
    assert set(read.kernels) == {"conv1_1", "conv1_2"}


# ---------------------------------------------------------------------------- model activations


def test_first_block_matches_numpy_for_both_poolings(files, weights, image):
    mean = np.asarray(nst_utils.VGG_MEAN_RGB_255)
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
    expected = tf_nn_features(weights, image, nst_utils.VGG_MEAN_RGB_255, pooling)
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
    real_reader = nst_utils.read_vgg19_weights

    def spy_reader(path, verify_checksum=True, conv_names=None):
        asked.append(list(conv_names))
        return real_reader(path, verify_checksum, conv_names)

    monkeypatch.setattr(nst_utils, "read_vgg19_weights", spy_reader)
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


# ---------------------------------------------------------------------------- finding weights, random fallback


def test_empty_directory_falls_back_to_seeded_random_weights(tmp_path, image, capsys):
    model = load_vgg_model(tmp_path, output_layers=["conv1_2"])
    notice = capsys.readouterr().out
    assert "random" in notice and "python nst_utils.py download" in notice and len(notice.strip().splitlines()) <= 2
    assert model.weights_kind == "random" and "random" in model.weights_source and "seed 0" in model.weights_source
    again = load_vgg_model(tmp_path, output_layers=["conv1_2"])
    np.testing.assert_array_equal(model(image)["conv1_2"], again(image)["conv1_2"])
    other_seed = load_vgg_model(tmp_path, output_layers=["conv1_2"], seed=1)
    assert not np.allclose(model(image)["conv1_2"], other_seed(image)["conv1_2"])


def test_random_weights_are_he_scaled_and_reproducible():
    first, second = nst_utils.random_vgg19_weights(seed=0), nst_utils.random_vgg19_weights(seed=0)
    for name in CONV_NAMES:
        np.testing.assert_array_equal(first.kernels[name], second.kernels[name])
    kernel = first.kernels["conv3_1"]  # (3, 3, 128, 256): He std = sqrt(2 / 1152)
    assert kernel.shape == (3, 3, 128, 256) and kernel.dtype == np.float32
    assert abs(kernel.std() / np.sqrt(2 / 1152) - 1) < 0.02 and not first.biases["conv3_1"].any()
    some = nst_utils.random_vgg19_weights(seed=0, conv_names=["conv3_1"])  # a layer's filters don't depend on others
    np.testing.assert_array_equal(some.kernels["conv3_1"], kernel)


def test_none_searches_pretrained_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nst_utils, "PRETRAINED_DIR", tmp_path)
    assert load_vgg_model(None, output_layers=["conv1_1"]).weights_kind == "random"
    assert str(tmp_path) in capsys.readouterr().out


def test_explicit_random_prints_the_notice(capsys):
    model = load_vgg_model("random", output_layers=["conv1_1"], seed=3)
    assert model.weights_kind == "random" and "seed 3" in model.weights_source
    assert "python nst_utils.py download" in capsys.readouterr().out


def test_a_file_with_the_published_name_is_picked_up(tmp_path, weights, capsys):
    sw.write_matconvnet_mat(tmp_path / MAT_NAME, weights)
    model = load_vgg_model(tmp_path, output_layers=["conv1_1"], verify_checksum=False)
    assert model.weights_kind == "matconvnet-mat" and MAT_NAME in model.weights_source
    sw.write_keras_h5(tmp_path / H5_NAME, weights)  # Keras .h5 is preferred when both are there
    assert load_vgg_model(tmp_path, output_layers=["conv1_1"], verify_checksum=False).weights_kind == "keras-h5"
    assert nst_utils.find_weights_files(tmp_path) == [tmp_path / H5_NAME, tmp_path / MAT_NAME]
    assert capsys.readouterr().out == ""  # no notice when real weights are found


def test_a_bad_preferred_file_is_skipped_for_a_good_one(tmp_path, weights, capsys):
    sw.write_html(tmp_path / H5_NAME)
    sw.write_matconvnet_mat(tmp_path / MAT_NAME, weights)
    assert load_vgg_model(tmp_path, output_layers=["conv1_1"], verify_checksum=False).weights_kind == "matconvnet-mat"
    assert H5_NAME in capsys.readouterr().out


def test_a_bad_file_alone_is_an_error_not_random_weights(tmp_path):
    sw.write_html(tmp_path / MAT_NAME)
    with pytest.raises(WeightsFileError, match="web page"):
        load_vgg_model(tmp_path, verify_checksum=False)


def test_published_name_with_wrong_md5_is_flagged(tmp_path, weights):
    path = sw.write_matconvnet_mat(tmp_path / MAT_NAME, weights)
    with pytest.raises(WeightsFileError) as info:
        load_vgg_model(tmp_path)
    message = str(info.value)
    assert "\n" not in message and MAT_NAME in message and "md5" in message
    assert "python nst_utils.py download matconvnet" in message and "rename" in message
    with pytest.raises(WeightsFileError, match="md5"):
        read_vgg19_weights(path)


def test_file_digests_match_hashlib_and_are_cached(tmp_path):
    import hashlib

    path = tmp_path / "bytes.bin"
    path.write_bytes(bytes(range(256)) * 10_000)
    md5, sha256 = nst_utils.file_digests(path)
    assert md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert nst_utils.file_digests(str(path)) == (md5, sha256)


@pytest.mark.parametrize(
    ("name", "hint"),
    [(MAT_NAME + ".1", f"{MAT_NAME}.1: rename it to {MAT_NAME}"), (H5_NAME + ".part", "unfinished download")],
)
def test_notice_points_at_near_miss_files(tmp_path, capsys, name, hint):
    (tmp_path / name).write_bytes(b"x")
    load_vgg_model(tmp_path, output_layers=["conv1_1"])
    notice = capsys.readouterr().out
    assert hint in notice and len(notice.strip().splitlines()) == 2


# ---------------------------------------------------------------------------- bad files


def _bad_file(kind, folder, weights, files):
    """Write one kind of bad weights file into `folder` and return its path."""
    if kind == "vgg16 mat":
        return sw.write_vgg16_mat(folder / "imagenet-vgg-verydeep-16.mat")
    if kind == "truncated mat":
        return sw.write_truncated(folder / "truncated.mat", files["current"])
    if kind == "truncated h5":
        return sw.write_truncated(folder / "truncated.h5", files["h5"])
    if kind == "html as mat":
        return sw.write_html(folder / "page.mat")
    if kind in ("empty mat", "empty h5"):
        path = folder / ("empty." + kind.split()[1])
        path.write_bytes(b"")
        return path
    if kind == "vgg16 h5":
        return sw.write_vgg16_h5(folder / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    if kind == "resnet h5":
        return sw.write_resnet_like_h5(folder / "resnet50_notop.h5")
    if kind == "unknown extension":
        path = folder / "vgg19.pth"
        path.write_bytes(b"\x80\x02weights")
        return path
    if kind == "missing":
        return folder / "no-such-weights.mat"
    if kind == "wrong kernel shape":
        return sw.write_matconvnet_mat(folder / "transposed.mat", sw.with_bad_kernel(weights, "conv2_1"))
    if kind == "text as h5":
        path = folder / "notes.h5"
        path.write_text("Not Found\n")
        return path
    raise AssertionError(kind)


BAD_FILES = {  # kind -> words the message must contain
    "vgg16 mat": ["conv3_4", "VGG-16"],
    "truncated mat": ["truncated"],
    "truncated h5": ["truncated"],
    "html as mat": ["web page"],
    "empty mat": ["empty"],
    "empty h5": ["empty"],
    "vgg16 h5": ["conv3_4", "VGG-16"],
    "resnet h5": ["not VGG-19", "conv1_conv"],
    "unknown extension": [".pth"],
    "missing": ["no such file", "download"],
    "wrong kernel shape": ["conv2_1", "(3, 3, 4, K)"],
    "text as h5": ["HDF5"],
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_gives_one_line_error_naming_the_file(tmp_path, weights, files, kind):
    path = _bad_file(kind, tmp_path, weights, files)
    with pytest.raises(WeightsFileError) as info:
        load_vgg_model(path, output_layers=["conv1_1"])
    message = str(info.value)
    assert "\n" not in message, message
    assert path.name in message, message
    for word in BAD_FILES[kind]:
        assert word in message, message
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, WeightsFileError)


def test_dtype_policy_is_passed_to_the_layers(files, image):
    float32 = load_vgg_model(files["h5"], output_layers=["conv2_1"])(image)["conv2_1"].numpy()
    bfloat16 = load_vgg_model(files["h5"], output_layers=["conv2_1"], dtype="mixed_bfloat16")(image)["conv2_1"]
    assert bfloat16.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(bfloat16, tf.float32).numpy(), float32, atol=0.03 * np.abs(float32).max())
