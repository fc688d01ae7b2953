"""When did this kernel boot? The seam the reboot reclaim uses (tests inject their own)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
STAT_PATH = "/proc/stat"


@dataclass(frozen=True)
class BootInfo:
    """`boot_id` changes on every boot; `boot_time` is the wall-clock boot time (epoch seconds)."""

    boot_id: str
    boot_time: float


def current_boot() -> Optional[BootInfo]:
    """None when /proc does not tell (then nothing is reclaimed: never guess)."""
    try:
        with open(BOOT_ID_PATH, "rb") as f:
            boot_id = f.read().decode("ascii", "replace").strip()
        with open(STAT_PATH, "rb") as f:
            btime = next((int(line.split()[1]) for line in f if line.startswith(b"btime ")), None)
    except (OSError, ValueError, IndexError):
        return None
    if not boot_id or btime is None:
        return None
    return BootInfo(boot_id, float(btime))
