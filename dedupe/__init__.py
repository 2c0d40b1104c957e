"""dedupe: deduplicating backups of LXD servers."""

import os as _os

# numpy (the chunk index) never calls BLAS here; OpenBLAS would otherwise start (and
# spin) a thread per core at import, which costs about as much as the rest of startup.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
