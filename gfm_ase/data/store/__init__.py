"""The gfm-ase structure store: one HDF5 file (or a folder of shard files) per dataset.

Columnar layout (schema in ``docs/data-format.md``): per-atom columns (positions, numbers, forces, magmoms) are
concatenated over structures and sliced with per-structure ``offsets``, so reading structure ``i`` costs O(1)
chunk reads whatever the store size. Every column is chunked and compressed and resizable (appendable).

One concept per module:

* ``schema``: format tag, schema version, units, column names/dtypes/shapes, the header check, :class:`StoreError`;
* ``writer``: :class:`StoreWriter` (atomic create or append: a temporary file renamed over the target only when
  the ``with`` block exits without an exception, so an interrupted conversion never leaves a file that looks
  complete);
* ``shard``: one file of a store, opened lazily (re-opened after a fork);
* ``reader``: :class:`Store` (random access over the shards; refuses files with another format tag or an unknown
  schema version) and :func:`read_store_attrs`;
* ``columns``: the whole-store views of a :class:`Store` (label columns, element counts, label coverage).

Summaries and checks built on these (``gfm data info`` / ``check``) are in :mod:`gfm_ase.data.stats`.
"""

from gfm_ase.data.record import RecordError
from gfm_ase.data.store.reader import Store, read_store_attrs
from gfm_ase.data.store.schema import FORMAT, SCHEMA_VERSION, UNITS, StoreError
from gfm_ase.data.store.writer import StoreWriter

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreWriter",
    "UNITS",
    "RecordError",
    "read_store_attrs",
]
