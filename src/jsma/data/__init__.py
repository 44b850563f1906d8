"""Data: MNIST in the paper's split (embedded copy, IDX files or a download), and a
user's own arrays, image folders and Parquet tables (`load_data`)."""

from jsma.data._dataset import PIXEL_SCALE, Dataset, Split, SplitName
from jsma.data._files import read_npz
from jsma.data._idx import read_idx, write_idx
from jsma.data._images import read_image_folder
from jsma.data._parquet import read_parquet
from jsma.data._reference import DataRef, load_data
from jsma.data._sources import (
    CACHE_ENV_VAR,
    STANDARD_FILES,
    STANDARD_MIRRORS,
    DownloadSource,
    EmbeddedSource,
    IdxDirectorySource,
    MnistSource,
    default_cache_dir,
    load_mnist,
)

__all__ = [
    "CACHE_ENV_VAR",
    "PIXEL_SCALE",
    "STANDARD_FILES",
    "STANDARD_MIRRORS",
    "DataRef",
    "Dataset",
    "DownloadSource",
    "EmbeddedSource",
    "IdxDirectorySource",
    "MnistSource",
    "Split",
    "SplitName",
    "default_cache_dir",
    "load_data",
    "load_mnist",
    "read_idx",
    "read_image_folder",
    "read_npz",
    "read_parquet",
    "write_idx",
]
