"""Shared by the bench drivers: settings from the environment (empty means
the default) and the memory figures of a process they started."""

import os


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value else default


def env_float(name, default):
    value = os.environ.get(name, "")
    return float(value) if value else default


def status_kib(pid, field):
    """A KiB figure of /proc/PID/status (VmRSS, VmHWM), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
