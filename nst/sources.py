"""The published VGG-19 weights files: where they are served and how to recognise a genuine copy. No TensorFlow."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from nst.errors import DownloadError

MIRROR_ENV = "NST_WEIGHTS_URL"  # a mirror of Keras's file (the one fetched on first use), for users behind a firewall
# Tests only: one more md5 to accept as genuine, so that a synthetic file served on 127.0.0.1 passes as Keras's.
TEST_MD5_ENV = "NST_TEST_WEIGHTS_MD5"


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """A published VGG-19 weights file: where it is served and how to recognise a genuine copy."""

    key: str  # name on the command line: "keras" or "matconvnet"
    filename: str  # the exact name the loader looks for in pretrained-model/
    url: str
    md5s: tuple[str, ...]  # md5 of every genuine release; the first is the file served at `url`
    sha256: str | None  # sha256 of the file served at `url`, where published
    size_bytes: int | None  # expected size: a progress hint only, the checksum is the authority


WEIGHTS_SOURCES = {
    "keras": WeightsSource(
        key="keras",
        filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5s=("253f8cb515780f3b799900260a226db6",),
        sha256=None,
        size_bytes=80_134_624,
    ),
    "matconvnet": WeightsSource(
        key="matconvnet",
        filename="imagenet-vgg-verydeep-19.mat",
        url="https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat",
        # current release first, then the old "beta16" release (same network, other struct layout)
        md5s=("106118b7cf60435e6d8e04f6a6dc3657", "8ee3263992981a1d26e73b3ca028a123"),
        sha256="abdb57167f82a2a1fbab1e1c16ad9373411883f262a1a37ee5db2e6fb0044695",
        size_bytes=534_904_783,
    ),
}


def weights_source(key: str) -> WeightsSource:
    """The WEIGHTS_SOURCES entry for `key`, with $NST_WEIGHTS_URL as Keras's URL where it is set (and the tests'
    extra md5); DownloadError listing the known keys for an unknown one."""
    if key not in WEIGHTS_SOURCES:
        raise DownloadError(f"unknown weights {key!r}: choose one of {', '.join(WEIGHTS_SOURCES)}.")
    source = WEIGHTS_SOURCES[key]
    mirror = os.environ.get(MIRROR_ENV, "").strip() if key == "keras" else ""
    test_md5 = os.environ.get(TEST_MD5_ENV, "").strip().lower()
    return dataclasses.replace(
        source, url=mirror or source.url, md5s=(*source.md5s, test_md5) if test_md5 else source.md5s
    )


# (resolved path, size, mtime_ns) -> (md5, sha256): hash a 500 MB file once per session, again only if it changes.
_DIGEST_CACHE: dict[tuple[str, int, int], tuple[str, str]] = {}


def file_digests(path: Path | str) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, read in 1 MiB chunks (cached per path, size and modification time)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGEST_CACHE:
        md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):  # chunked: the .mat is 535 MB
                md5.update(chunk)
                sha256.update(chunk)
        _DIGEST_CACHE[key] = (md5.hexdigest(), sha256.hexdigest())
    return _DIGEST_CACHE[key]


def checksum_problem(path: Path, source: WeightsSource) -> str | None:
    """None if `path` is a genuine release of `source` (md5, and sha256 where published), else what was found."""
    md5, sha256 = file_digests(path)
    if md5 not in source.md5s:
        return f"md5 {md5}, expected {' or '.join(source.md5s)}"
    if source.sha256 and md5 == source.md5s[0] and sha256 != source.sha256:
        return f"sha256 {sha256}, expected {source.sha256}"
    return None
