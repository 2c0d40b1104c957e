#!/usr/bin/env python3
"""What zstd costs on the file contents of a tar, by level and by file size.

    .venv/bin/python benchmarks/zstd_levels.py [--input FILE]

Each regular file's content is compressed on its own, one thread, as a tar backup
does with a file smaller than a chunk: seconds and compressed size for levels 1, 2
and 3, then level 3 split by file size, then the rate of each file of 1 MiB or more.
"""

from __future__ import annotations

import argparse
import tarfile
import time

import zstandard


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default="/var/tmp/dedupe-corpus/night1.tar")
    args = ap.parse_args()
    contents: list[bytes] = []
    names: list[str] = []
    with tarfile.open(args.input) as t:
        for m in t:
            f = t.extractfile(m) if m.isfile() and m.size else None
            if f is not None:
                contents.append(f.read())
                names.append(m.name)
    total = sum(map(len, contents))
    print(f"{len(contents)} files, {total / 1e6:.1f} MB")
    for level in (1, 2, 3):
        c = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
        t0 = time.perf_counter()
        out = sum(len(c.compress(x)) for x in contents)
        print(f"level {level}: {time.perf_counter() - t0:.3f} s, {out / 1e6:.1f} MB")
    c = zstandard.ZstdCompressor(level=3, write_content_size=True, write_checksum=False)
    for below in (4 << 10, 64 << 10, 1 << 20, 1 << 62):
        some = [x for x in contents if len(x) < below]
        t0 = time.perf_counter()
        for x in some:
            c.compress(x)
        label = "all" if below == 1 << 62 else f"under {below >> 10} KiB"
        print(f"level 3, files {label}: {len(some)} files, {sum(map(len, some)) / 1e6:.1f} MB, "
              f"{time.perf_counter() - t0:.3f} s")
    for name, x in zip(names, contents):
        if len(x) >= 1 << 20:
            t0 = time.perf_counter()
            out = len(c.compress(x))
            print(f"  {len(x) / 1e6:5.1f} MB  ratio {out / len(x):.2f}  {len(x) / (time.perf_counter() - t0) / 1e6:5.0f} MB/s"
                  f"  {name[-60:]}")


if __name__ == "__main__":
    main()
