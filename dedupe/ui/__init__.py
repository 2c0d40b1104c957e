"""``dedupe ui``: the read-only web UI (the ``ui`` extra: starlette, uvicorn, jinja2).
``app`` routes and renders, ``model`` keeps what the pages show in memory, ``pages``
computes each page's figures, ``tree`` makes a backup browsable, ``guard`` decides who
may ask; it reaches the repository only through ``dedupe.api``."""
