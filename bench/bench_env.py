"""Settings of the bench drivers, read from the environment (empty means the default)."""

import os


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value else default


def env_float(name, default):
    value = os.environ.get(name, "")
    return float(value) if value else default
