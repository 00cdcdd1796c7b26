"""The files kpv ships beside its code: the default job, kconfig fragments, the
demo series and the stress sources.

In a checkout they are the top-level folders; `pipeline/data/` links to them, so
that a wheel carries them as package data and an installed kpv finds them where
it is installed, from any working folder. Job files name each other by relative
paths, which hold in both layouts because the four folders stay siblings.
"""

from importlib import resources
from pathlib import Path

DATA = Path(str(resources.files("pipeline").joinpath("data")))
DEFAULT_JOB = DATA / "jobs" / "anon-vma.toml"
STRESS_SRC = DATA / "stress"
