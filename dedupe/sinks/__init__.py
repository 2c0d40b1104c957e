"""Adapters out: where a restore writes, below the engine. ``directory`` lays a tree out
(never writing outside the target), ``pax_writer`` writes one as a PAX tar stream."""
