"""Data loading: read records from files, normalise them to conversations, and split off an eval set."""

from tunesmith.data.formats import FORMATS, check_columns, detect_format, normalise
from tunesmith.data.loader import (
    Conversations,
    find_problems,
    load_conversations,
    split_eval,
    split_selection,
    train_and_eval,
)
from tunesmith.data.sources import read_records, scan_records
from tunesmith.data.types import Conversation, Message

__all__ = [
    "FORMATS",
    "Conversation",
    "Conversations",
    "Message",
    "check_columns",
    "detect_format",
    "find_problems",
    "load_conversations",
    "normalise",
    "read_records",
    "scan_records",
    "split_eval",
    "split_selection",
    "train_and_eval",
]
