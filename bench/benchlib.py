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


def cpu_seconds(pid):
    """CPU time (user + system) PID has used, in seconds, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def fd_count(pid):
    """Open file descriptors of a process (entries of /proc/PID/fd), or None once it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def least_squares_slope(points):
    """The slope of the least-squares line through (x, y) points (None with fewer than 2 distinct x)."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx
