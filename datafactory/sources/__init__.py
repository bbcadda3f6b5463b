"""The source registry: recipe ``kind`` -> class. One kind per file."""
from datafactory.sources.base import Source
from datafactory.sources.dataset import DatasetSource
from datafactory.sources.files import FilesSource

SOURCES: dict[str, type[Source]] = {cls.kind: cls for cls in (
    FilesSource, DatasetSource,
)}
