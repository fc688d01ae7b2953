"""The host-local executable: its handler table, and main() for the installed launcher."""
from __future__ import annotations

from shared import skel

from . import handlers

PLUGIN = skel.Plugin(
    name="host-local",
    handlers={
        "ADD": handlers.cmd_add,
        "DEL": handlers.cmd_del,
        "CHECK": handlers.cmd_check,
        "GC": handlers.cmd_gc,
        "STATUS": handlers.cmd_status,
    },
    about="CNI host-local plugin (pycni)",
)


def main() -> int:
    return skel.main(PLUGIN)
