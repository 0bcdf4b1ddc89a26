"""nst.weights: reading the Keras .h5 and both MatConvNet .mat releases, random features, and finding the weights.

Checked on tiny synthetic files (tests/synthetic_weights.py) laid out like the published ones; the model built from
these weights is tested in test_model.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import synthetic_weights as sw
from conftest import MIRROR_ENV, WEIGHTS_ENV
from http_fixture import closed_port_url

import nst.weights
from nst.errors import WeightsFileError
from nst.sources import WEIGHTS_SOURCES
from nst.vgg19 import VGG19_CONV_NAMES, VGG_MEAN_RGB_255
from nst.weights import VGGWeights, find_weights_files, random_vgg19_weights, read_vgg19_weights, resolve_weights

CONV_NAMES = list(VGG19_CONV_NAMES)
MAT_NAME = WEIGHTS_SOURCES["matconvnet"].filename
H5_NAME = WEIGHTS_SOURCES["keras"].filename


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
    np.testing.assert_allclose(read.mean_rgb_255, VGG_MEAN_RGB_255, rtol=1e-6)
    assert read.kind == ("keras-h5" if which == "h5" else "matconvnet-mat")
    assert str(files[which]) in read.source


@pytest.mark.parametrize("release", ["current", "old"])
def test_mat_mean_pixel_is_read_from_the_file(tmp_path, weights, release):
    path = sw.write_matconvnet_mat(tmp_path / "mean.mat", weights, release=release, mean_rgb=(100.0, 110.0, 120.0))
    np.testing.assert_allclose(read_vgg19_weights(path).mean_rgb_255, [100.0, 110.0, 120.0], rtol=1e-6)


def test_reader_loads_only_the_convs_asked_for(files):
    read = read_vgg19_weights(files["h5"], conv_names=["conv1_1", "conv1_2"])
    assert set(read.kernels) == {"conv1_1", "conv1_2"}


def test_readers_agree_on_every_file_format(files):
    reads = {which: read_vgg19_weights(path) for which, path in files.items()}
    for name in CONV_NAMES:
        for which in ("old", "h5"):
            np.testing.assert_array_equal(reads[which].kernels[name], reads["current"].kernels[name], err_msg=which)
            np.testing.assert_array_equal(reads[which].biases[name], reads["current"].biases[name], err_msg=which)


def test_keras_conv1_1_is_flipped_from_bgr_to_rgb(files, weights):
    with h5py.File(files["h5"], "r") as file:
        stored_bgr = file["block1_conv1"]["block1_conv1_W_1:0"][()]
    assert not np.array_equal(stored_bgr, weights["conv1_1"][0]), "the check needs a kernel that is not symmetric"
    read = read_vgg19_weights(files["h5"])
    np.testing.assert_array_equal(read.kernels["conv1_1"], stored_bgr[:, :, ::-1, :])
    with h5py.File(files["h5"], "r") as file:  # later convs are stored as they are
        np.testing.assert_array_equal(read.kernels["conv1_2"], file["block1_conv2"]["block1_conv2_W_1:0"][()])


# ---------------------------------------------------------------------------- random features


def test_random_weights_are_he_scaled_and_reproducible():
    first, second = random_vgg19_weights(seed=0), random_vgg19_weights(seed=0)
    for name in CONV_NAMES:
        np.testing.assert_array_equal(first.kernels[name], second.kernels[name])
    kernel = first.kernels["conv3_1"]  # (3, 3, 128, 256): He std = sqrt(2 / 1152)
    assert kernel.shape == (3, 3, 128, 256) and kernel.dtype == np.float32
    assert abs(kernel.std() / np.sqrt(2 / 1152) - 1) < 0.02 and not first.biases["conv3_1"].any()
    some = random_vgg19_weights(seed=0, conv_names=["conv3_1"])  # a layer's filters don't depend on others
    np.testing.assert_array_equal(some.kernels["conv3_1"], kernel)


def test_random_weights_chain_like_vgg19_and_say_they_are_random():
    random = random_vgg19_weights(seed=2)
    assert list(random.kernels) == CONV_NAMES and random.kind == "random" and "seed 2" in random.source
    in_channels = 3
    for name in CONV_NAMES:
        assert random.kernels[name].shape[:3] == (3, 3, in_channels), name
        assert random.biases[name].shape == random.kernels[name].shape[3:], name
        in_channels = random.kernels[name].shape[3]
    assert in_channels == 512
    np.testing.assert_array_equal(random.mean_rgb_255, np.asarray(VGG_MEAN_RGB_255, np.float32))
    assert not np.array_equal(random.kernels["conv1_1"], random_vgg19_weights(seed=3).kernels["conv1_1"])


# ---------------------------------------------------------------------------- finding weights, random fallback


def test_already_read_weights_are_used_as_they_are(files):
    read = read_vgg19_weights(files["h5"], conv_names=["conv1_1"])
    assert resolve_weights(read, CONV_NAMES, seed=0, verify_checksum=True) is read


def test_empty_directory_falls_back_to_seeded_random_weights(tmp_path, capsys):
    found = resolve_weights(tmp_path, ["conv1_1", "conv1_2"], seed=0, verify_checksum=True)
    notice = capsys.readouterr().out
    assert "random" in notice and "python nst_utils.py download" in notice and len(notice.strip().splitlines()) <= 2
    assert str(tmp_path) in notice
    assert isinstance(found, VGGWeights) and set(found.kernels) == {"conv1_1", "conv1_2"}
    assert found.kind == "random" and "random" in found.source and "seed 0" in found.source
    again = resolve_weights(tmp_path, ["conv1_1", "conv1_2"], seed=0, verify_checksum=True)
    np.testing.assert_array_equal(found.kernels["conv1_2"], again.kernels["conv1_2"])
    other_seed = resolve_weights(tmp_path, ["conv1_1", "conv1_2"], seed=1, verify_checksum=True)
    assert not np.allclose(found.kernels["conv1_2"], other_seed.kernels["conv1_2"])


def test_none_uses_the_file_in_pretrained_dir_without_a_request(weights_server, weights, capsys):
    weights_server.pretrained_dir.mkdir()
    sw.write_keras_h5(weights_server.pretrained_dir / H5_NAME, weights)
    assert find_weights_files() == [weights_server.pretrained_dir / H5_NAME]
    assert resolve_weights(None, ["conv1_1"], seed=0, verify_checksum=False).kind == "keras-h5"
    assert weights_server.requests == 0 and capsys.readouterr().out == ""


def test_none_fetches_keras_weights_once_on_first_use(weights_server, weights):
    first = resolve_weights(None, ["conv1_1"], seed=0, verify_checksum=True)
    assert first.kind == "keras-h5" and first.source == f"Keras h5: {weights_server.fetched_path}"
    np.testing.assert_array_equal(first.kernels["conv1_1"], weights["conv1_1"][0])
    assert sorted(p.name for p in weights_server.pretrained_dir.iterdir()) == [H5_NAME]
    assert resolve_weights(None, ["conv1_1"], seed=0, verify_checksum=True).kind == "keras-h5"
    assert weights_server.requests == 1, "the second model reads the fetched file"


def test_none_offline_goes_on_with_random_features_and_says_why(weights_server, monkeypatch, capsys):
    sock, url = closed_port_url()
    monkeypatch.setenv(MIRROR_ENV, url)
    try:
        found = resolve_weights(None, ["conv1_1"], seed=0, verify_checksum=True)
    finally:
        sock.close()
    out, err = capsys.readouterr()
    assert found.kind == "random" and str(weights_server.pretrained_dir) in out
    assert err.count("\n") == 1 and err.startswith("note: this run uses random features"), err
    assert "Connection refused" in err and "make weights" in err and MIRROR_ENV in err, err
    assert not weights_server.pretrained_dir.exists(), "no folder is left by a download that never started"


def test_none_offline_tries_again_on_the_next_model(weights_server, capsys):
    weights_server.server.payload, weights_server.server.content_type = b"<html>proxy</html>", "text/html"
    assert resolve_weights(None, ["conv1_1"], seed=0, verify_checksum=True).kind == "random"
    weights_server.server.payload, weights_server.server.content_type = weights_server.payload, "application/x-hdf5"
    assert resolve_weights(None, ["conv1_1"], seed=0, verify_checksum=True).kind == "keras-h5", "the cell run again"
    assert weights_server.requests == 2 and capsys.readouterr().err.count("note: ") == 1


@pytest.mark.parametrize("how", ["weights='random'", "NST_WEIGHTS=random"])
def test_random_never_touches_the_network(weights_server, monkeypatch, capsys, how):
    if how == "NST_WEIGHTS=random":
        monkeypatch.setenv(WEIGHTS_ENV, "random")
    found = resolve_weights("random" if how == "weights='random'" else None, ["conv1_1"], seed=3, verify_checksum=True)
    assert found.kind == "random" and "seed 3" in found.source and set(found.kernels) == {"conv1_1"}
    assert nst.weights.check_weights(None if how == "NST_WEIGHTS=random" else "random") == "random"
    notice = capsys.readouterr().out
    assert "python nst_utils.py download" in notice and "not pretrained" in notice
    assert weights_server.requests == 0 and not weights_server.pretrained_dir.exists()


def test_nst_weights_naming_no_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nowhere.h5"))
    with pytest.raises(WeightsFileError, match=r"^NST_WEIGHTS=.*nowhere\.h5: no such file or folder; set it to random"):
        nst.weights.check_weights(None)


def test_a_file_with_the_published_name_is_picked_up(tmp_path, weights, capsys):
    sw.write_matconvnet_mat(tmp_path / MAT_NAME, weights)
    found = resolve_weights(tmp_path, ["conv1_1"], seed=0, verify_checksum=False)
    assert found.kind == "matconvnet-mat" and MAT_NAME in found.source
    sw.write_keras_h5(tmp_path / H5_NAME, weights)  # Keras .h5 is preferred when both are there
    assert resolve_weights(tmp_path, ["conv1_1"], seed=0, verify_checksum=False).kind == "keras-h5"
    assert find_weights_files(tmp_path) == [tmp_path / H5_NAME, tmp_path / MAT_NAME]
    assert capsys.readouterr().out == ""  # no notice when real weights are found


def test_a_bad_preferred_file_is_skipped_for_a_good_one(tmp_path, weights, capsys):
    sw.write_html(tmp_path / H5_NAME)
    sw.write_matconvnet_mat(tmp_path / MAT_NAME, weights)
    assert resolve_weights(tmp_path, ["conv1_1"], seed=0, verify_checksum=False).kind == "matconvnet-mat"
    assert H5_NAME in capsys.readouterr().out


def test_a_bad_file_alone_is_an_error_not_random_weights(tmp_path):
    sw.write_html(tmp_path / MAT_NAME)
    with pytest.raises(WeightsFileError, match="web page"):
        resolve_weights(tmp_path, CONV_NAMES, seed=0, verify_checksum=False)


def test_published_name_with_wrong_md5_is_flagged(tmp_path, weights):
    path = sw.write_matconvnet_mat(tmp_path / MAT_NAME, weights)
    with pytest.raises(WeightsFileError) as info:
        resolve_weights(tmp_path, CONV_NAMES, seed=0, verify_checksum=True)
    message = str(info.value)
    assert "\n" not in message and MAT_NAME in message and "md5" in message
    assert "python nst_utils.py download matconvnet" in message and "rename" in message
    with pytest.raises(WeightsFileError, match="md5"):
        read_vgg19_weights(path)


@pytest.mark.parametrize(
    ("name", "hint"),
    [(MAT_NAME + ".1", f"{MAT_NAME}.1: rename it to {MAT_NAME}"), (H5_NAME + ".part", "unfinished download")],
)
def test_notice_points_at_near_miss_files(tmp_path, capsys, name, hint):
    (tmp_path / name).write_bytes(b"x")
    resolve_weights(tmp_path, ["conv1_1"], seed=0, verify_checksum=True)
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
        resolve_weights(path, ["conv1_1"], seed=0, verify_checksum=True)
    message = str(info.value)
    assert "\n" not in message, message
    assert path.name in message, message
    for word in BAD_FILES[kind]:
        assert word in message, message
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, WeightsFileError)


def test_reading_weights_never_imports_tensorflow(files):
    # nst.weights returns numpy arrays: the command line and the memory check read weights without TensorFlow.
    script = (
        "import sys\n"
        "from nst.weights import random_vgg19_weights, read_vgg19_weights\n"
        "read = read_vgg19_weights(sys.argv[1])\n"
        "random_vgg19_weights(conv_names=['conv1_1'])\n"
        "print(len(read.kernels), 'nst.weights' in sys.modules, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    project = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", script, str(files["h5"])], capture_output=True, text=True, timeout=120, cwd=project
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["16", "True", "False", "False"], "convs read, nst.weights, tensorflow, keras"
