"""Tasks: the task file (spec), its data files (files), its splits (splits), the texts splits share
(leakage) and the summary ``rightsize tasks validate`` prints (summary). The public names are here."""

from rightsize.adequacy import Target
from rightsize.tasks.files import FORMATS, data_format, read_columns, read_texts
from rightsize.tasks.leakage import MOSTLY, Overlap, Overlaps, overlaps, refuse_overlap
from rightsize.tasks.spec import ALLOWED_KEYS, DATA_KEYS, METRICS, TaskSpec, expand_path, load_task
from rightsize.tasks.splits import Split, TaskData, load_data, normalized
from rightsize.tasks.summary import summarize

__all__ = [
    "ALLOWED_KEYS", "DATA_KEYS", "FORMATS", "METRICS", "MOSTLY", "Overlap", "Overlaps", "Split", "Target", "TaskData",
    "TaskSpec", "data_format", "expand_path", "load_data", "load_task", "normalized", "overlaps", "read_columns",
    "read_texts", "refuse_overlap", "summarize",
]
