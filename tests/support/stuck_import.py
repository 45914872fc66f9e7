"""A module whose import never ends in time (a fork server preloading it is stuck): for
tests/runners/test_local.py."""

import time

time.sleep(3600)
