"""Entry point of the installed `bridge` executable: the handler table and nothing else."""
from __future__ import annotations

from shared import skel

from .handlers import cmd_add, cmd_check, cmd_del, cmd_gc, cmd_status

PLUGIN = skel.Plugin(
    name="bridge",
    handlers={"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status},
    about="CNI bridge plugin (pycni)",
)


def main() -> int:
    return skel.main(PLUGIN)
