"""Datasets and LightningDataModules: FoD500, NYUv2 (synthesised defocus), DFD-indoor (real DSLR blur), procedural
default, user stacks."""

from datamodules.base import FocalStackDataModule, StackDataset
from datamodules.defocus import synthesize_focal_stack
from datamodules.dfd_indoor import DFDIndoorDataModule, DFDIndoorDataset
from datamodules.fod500 import FoD500DataModule, FoD500Dataset
from datamodules.folder import FocalStackFolderDataModule, FocalStackFolderDataset
from datamodules.nyuv2 import NYUv2DataModule, NYUv2Dataset
from datamodules.procedural import ProceduralDataset, SyntheticDataModule, make_scene, write_procedural_dataset
from sdgs.batch import DataError

__all__ = [
    "DataError",
    "DFDIndoorDataModule",
    "DFDIndoorDataset",
    "FocalStackFolderDataModule",
    "FocalStackFolderDataset",
    "FoD500DataModule",
    "FoD500Dataset",
    "FocalStackDataModule",
    "NYUv2DataModule",
    "NYUv2Dataset",
    "ProceduralDataset",
    "StackDataset",
    "SyntheticDataModule",
    "make_scene",
    "synthesize_focal_stack",
    "write_procedural_dataset",
]
