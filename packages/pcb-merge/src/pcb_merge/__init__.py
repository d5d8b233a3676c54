"""pcb-merge: PCB-Merging (Du et al., NeurIPS 2024, arXiv:2410.02396) and the merging baselines
(task arithmetic, TIES, DARE) for PyTorch state dicts and streamed safetensors checkpoints."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from papershelf import lazy_exports

if TYPE_CHECKING:
    from pcb_merge.checkpoints import SafetensorsCheckpoint, SafetensorsWriter, open_checkpoint
    from pcb_merge.config import MergeConfig, load_config, run_config
    from pcb_merge.merge import PCB, PCBScores, dare, pcb, task_arithmetic, ties
    from pcb_merge.search import SearchResult, evolutionary_search, grid_search
    from pcb_merge.streaming import merge_files

__all__ = [
    "PCB",
    "MergeConfig",
    "PCBScores",
    "SafetensorsCheckpoint",
    "SafetensorsWriter",
    "SearchResult",
    "__version__",
    "dare",
    "evolutionary_search",
    "grid_search",
    "load_config",
    "merge_files",
    "open_checkpoint",
    "pcb",
    "run_config",
    "task_arithmetic",
    "ties",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PCB": ".merge",
        "PCBScores": ".merge",
        "dare": ".merge",
        "pcb": ".merge",
        "task_arithmetic": ".merge",
        "ties": ".merge",
        "merge_files": ".streaming",
        "SafetensorsCheckpoint": ".checkpoints",
        "SafetensorsWriter": ".checkpoints",
        "open_checkpoint": ".checkpoints",
        "MergeConfig": ".config",
        "load_config": ".config",
        "run_config": ".config",
        "SearchResult": ".search",
        "evolutionary_search": ".search",
        "grid_search": ".search",
    },
)

try:
    __version__ = version("pcb-merge")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"
