"""The sample company: a seeded simulator of a B2B SaaS company's five source systems.

It writes incremental extract files to a landing zone (`<out>/<source>/<object>/<date>/<file>`)
and the ground truth beside them (`<out>/_truth/`). See README.md in this folder.
"""

from sample_company.config import Config
from sample_company.generate import Summary, generate

__all__ = ["Config", "Summary", "generate"]
