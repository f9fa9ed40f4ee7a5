"""How the platform's commands leave their process.

Seen in the test suite (twice, only under load, never in 20 runs on an idle machine):
`python -m assets.entities.decide` finished its work, printed its answer, and then the
interpreter's own shutdown aborted with "terminate called without an active exception"
(SIGABRT, exit -6). That message comes from a native library's thread being destroyed at exit,
after every line of ours has run. It turns a correct answer into a failed command. Which library
does it (pyarrow's or delta-rs's pools are the suspects) is not established. A command's
outcome must be its exit code, so a command flushes what it wrote and leaves without running
native destructors.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def leave(code: int | None) -> NoReturn:
    """Exit with `code` now: output flushed, no interpreter shutdown (its native destructors
    can abort a finished command; see above)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code or 0)
