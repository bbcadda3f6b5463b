"""The source registry: recipe ``kind`` -> class. One kind per file."""
from datafactory.sources.aihub_ethics import AihubEthicsSource
from datafactory.sources.base import Source
from datafactory.sources.dataset import DatasetSource
from datafactory.sources.evol_instruct import EvolInstructSource
from datafactory.sources.files import FilesSource
from datafactory.sources.kobest import KobestSource
from datafactory.sources.nikl_dialogue import NiklDialogueSource
from datafactory.sources.rlhf_reward import RlhfRewardSource

SOURCES: dict[str, type[Source]] = {cls.kind: cls for cls in (
    NiklDialogueSource, AihubEthicsSource, RlhfRewardSource, EvolInstructSource, KobestSource, FilesSource,
    DatasetSource,
)}
