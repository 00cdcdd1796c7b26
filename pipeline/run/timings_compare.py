"""How fast a revision ran against the baseline: per test and vCPU count, the ratio of
median rates with a 95% bootstrap interval over the runs, and a verdict.

The runs are a test's repeats in its boot (`repeats` in the job; each run's rate is in
the case's `ops_per_s_runs`). The interval is the 2.5th and 97.5th percentiles of the
ratio of medians over resamples of both sides' runs, drawn with a fixed seed so that one
set of results always gives one verdict. Slower or faster only when the whole interval
says so and the ratio passes the threshold; no change when the interval lies within
the threshold; too noisy otherwise, and with fewer than MIN_RUNS runs a side.
"""

from __future__ import annotations

import functools
import random
import statistics

from pipeline.results import Case, Suite, Timing

MIN_RUNS = 3  # fewer give no interval worth the name
RESAMPLES = 2000
THRESHOLD = 0.05  # the smallest change called slower or faster
METRIC = "ops_per_s"


def runs(case: Case) -> list[float]:
    """The rate of each run of the case's test, as its properties recorded them."""
    text = case.properties.get(f"{METRIC}_runs") or case.properties.get(METRIC, "")
    out = []
    for value in text.split(","):
        try:
            rate = float(value)
        except ValueError:
            continue
        if rate > 0:
            out.append(rate)
    return out


def compare(base: list[Suite], cells: list[Suite],
            threshold: float = THRESHOLD) -> list[Timing]:
    """Every test the revision and the baseline both timed at one vCPU count, on the same
    accelerator (TCG rates are not KVM rates)."""
    theirs = {(s.vcpus, c.name): (s, c) for s in base for c in s.cases if runs(c)}
    out = []
    for s in cells:
        for c in s.cases:
            found = theirs.get((s.vcpus, c.name))
            ours = runs(c)
            if not found or not ours or found[0].properties.get("accel") != \
                    s.properties.get("accel"):
                continue
            out.append(timing(c.name, s.vcpus or 0, runs(found[1]), ours, threshold))
    return out


def timing(test: str, vcpus: int, base: list[float], ours: list[float],
           threshold: float) -> Timing:
    b, o = statistics.median(base), statistics.median(ours)
    ratio = o / b
    low, high = _interval(tuple(base), tuple(ours)) if min(len(base), len(ours)) >= MIN_RUNS \
        else (ratio, ratio)
    if min(len(base), len(ours)) < MIN_RUNS:
        verdict = "too noisy"
    elif high < 1 and ratio < 1 - threshold:
        verdict = "slower"
    elif low > 1 and ratio > 1 + threshold:
        verdict = "faster"
    elif 1 - threshold <= low and high <= 1 + threshold:
        verdict = "no change"
    else:
        verdict = "too noisy"
    return Timing(test, vcpus, METRIC, round(b, 1), round(o, 1), round(ratio, 4),
                  round(low, 4), round(high, 4), verdict, len(base), len(ours))


# The run is saved, and so compared again, after every test: each cell's finished tests
# give the same runs each time, and their resampling is the costly part (6 ms each).
@functools.lru_cache(maxsize=4096)
def _interval(base: tuple[float, ...], ours: tuple[float, ...]) -> tuple[float, float]:
    rng = random.Random(0)
    ratios = sorted(statistics.median(rng.choices(ours, k=len(ours)))
                    / statistics.median(rng.choices(base, k=len(base)))
                    for _ in range(RESAMPLES))
    return ratios[int(0.025 * RESAMPLES)], ratios[int(0.975 * RESAMPLES) - 1]
