"""The jinja2 templates in pipeline/templates/: the guest's init, the scripts kpv
writes. Shell templates get `shquote` for every value that comes from a job."""

import shlex

import jinja2

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("pipeline"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["shquote"] = shlex.quote
