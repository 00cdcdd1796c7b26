"""The exception families kpv raises; only cli.main turns them into exit codes.

A failing patch, build or kernel is a result, not an exception: these are for
when kpv itself cannot do its job.
"""


class KpvError(Exception):
    """Base class: the pipeline could not do its job (exit code 2)."""


class UserError(KpvError):
    """Bad input from the user: a job file, a flag, a series source."""


class InfraError(KpvError):
    """The machine lacks something or a tool misbehaved: QEMU, git, make, disk."""
