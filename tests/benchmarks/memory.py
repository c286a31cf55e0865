"""Resident memory of the current process (Linux ``/proc``): now, and the peak since a reset.

The peak (``VmHWM``) can be reset by writing ``5`` to ``/proc/self/clear_refs`` (Linux 4.0+),
so one measurement's peak is not hidden by whatever the process did before it (imports, setup).
"""

from __future__ import annotations

import re
import resource
from pathlib import Path

MIB = 1024 * 1024
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def current_rss_mib() -> float:
    """Resident set size of this process now, in MiB (0.0 where ``/proc`` is missing)."""
    kib = _status_kib("VmRSS")
    return (kib or 0) / 1024


def reset_peak_rss() -> bool:
    """Reset the peak-RSS counter; False when the platform does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """Peak resident set size since the last reset (or process start), in MiB."""
    kib = _status_kib("VmHWM")
    if kib is None:
        # ru_maxrss is in KiB on Linux and has no reset; good enough elsewhere.
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024
