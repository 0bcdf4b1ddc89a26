"""The errors a user can fix. Each message is one line that names the file or value and the fix."""


class NSTError(Exception):
    """A problem the user can fix; its message is one line that names the file or value and the fix."""


class WeightsFileError(NSTError, ValueError):
    """A weights file that is missing, corrupt, or not VGG-19."""


class DownloadError(NSTError):
    """A weights download that failed or fetched the wrong bytes: `reason` says why in a few words (for a notice
    that goes on without the file), `kept_path` is the partial download kept for the next try, if any."""

    def __init__(self, message: str, reason: str | None = None, kept_path=None):
        super().__init__(message)
        self.reason = reason or message
        self.kept_path = kept_path


class ImageFileError(NSTError, ValueError):
    """An image file that cannot be used as content or style."""


class ImageSizeError(ImageFileError):
    """A size asked for that an image would be too large to hold at; `fitting_max_side_px` is the largest that fits."""

    def __init__(self, message: str, fitting_max_side_px: int):
        super().__init__(message)
        self.fitting_max_side_px = fitting_max_side_px


class SettingsError(NSTError, ValueError):
    """A setting of the run that is out of range or of the wrong type."""


class OptimisationConverged(NSTError):
    """Raised by an optimiser that has finished early (e.g. L-BFGS met its tolerance): the run ends cleanly."""


def one_line(error: BaseException) -> str:
    """The error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


# Modules whose package on PyPI has another name (the rest are installed under their own name).
_PACKAGE_OF_MODULE = {"PIL": "pillow", "cv2": "opencv-python-headless", "skimage": "scikit-image", "yaml": "pyyaml"}


def missing_package(error: ModuleNotFoundError, python: str) -> str:
    """One line for a package this project needs that `python` lacks: which one, and how to get the project's own."""
    module = (error.name or "").partition(".")[0] or one_line(error)
    package = _PACKAGE_OF_MODULE.get(module, module)
    return (
        f"error: the Python package {package!r} is not installed for {python}: run `make setup` and then "
        f"`.venv/bin/python nst_utils.py ...` (or `source .venv/bin/activate`; conda: `conda env create -f "
        "environment.yml`, then `conda activate nst`)"
    )
