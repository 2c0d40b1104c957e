"""The repository format: bytes in, bytes out.

Pure: no file system, no network, no ``dedupe`` imports. ``FORMAT.md`` beside this
package is the normative specification; each module names the section it implements.
"""
