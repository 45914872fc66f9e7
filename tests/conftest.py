"""Hypothesis profiles: the suite (and .ci/run) is deterministic; fuzzing is a person's choice.

    pytest                                   # "ci": derandomized, a fixed number of examples
    HYPOTHESIS_PROFILE=fuzz pytest --timeout 3600 tests/test_properties.py tests/test_explain.py  # by hand
"""

import os

from hypothesis import HealthCheck, settings

# ci: the same examples on every run and machine (derandomize), no example database (a
# failure found elsewhere must not change what CI runs), no timing-based checks.
settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# fuzz: random, many more examples; failures are saved in .hypothesis/ and replayed first.
settings.register_profile(
    "fuzz", derandomize=False, max_examples=5000, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
