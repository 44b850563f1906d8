"""Data: MNIST in the paper's split (embedded copy, IDX files or a download), and a
user's own arrays, image folders and Parquet tables (`load_data`)."""

from jsma.data._dataset import Dataset, Split
from jsma.data._reference import DataRef, load_data
from jsma.data._sources import default_cache_dir, load_mnist

__all__ = [
    "DataRef",
    "Dataset",
    "Split",
    "default_cache_dir",
    "load_data",
    "load_mnist",
]
