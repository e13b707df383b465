"""MPtrj-style JSON (CHGNet's Materials Project trajectories): ``{material_id: {frame_id: frame}}``.

A frame has ``structure`` (pymatgen dict), ``uncorrected_total_energy`` (eV, raw VASP energy, consistent with the
forces; the default label) or ``corrected_total_energy`` (MP2020-corrected; ``energy_key=...``), ``force``
(eV/A), ``stress`` (3x3, **kbar**, **compression positive**: VASP sign; ASE stress = -0.1 GPa/kbar * value) and
``magmom`` (Bohr magneton, may be null). ``group`` = material id (split by group to keep a material's frames
together), ``id`` = frame id. The top-level object is streamed material by material, so the 11 GB file is never
held in memory at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, Any, Iterator

from gfm_ase.data.converters.base import Item, want
from gfm_ase.data.converters.pymatgen_dict import structure_from_dict
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import stress_to_ase

_WS = re.compile(r"\s*")


def iter_object_items(fh: IO[str], chunk_size: int = 1 << 24) -> Iterator[tuple[str, object]]:
    """Yield ``(key, value)`` of a top-level JSON object from a text stream, one value in memory at a time."""
    dec = json.JSONDecoder()
    buf, pos, eof = "", 0, False

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        data = fh.read(chunk_size)
        if not data:
            eof = True
            return False
        buf = buf[pos:] + data
        pos = 0
        return True

    def skip_ws() -> None:
        nonlocal pos
        while True:
            m = _WS.match(buf, pos)  # matches the empty string too: never None
            pos = m.end() if m is not None else pos
            if pos < len(buf) or not more():
                return

    def decode() -> Any:
        nonlocal pos
        while True:
            try:
                value, end = dec.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if more():
                    continue
                raise ValueError(f"truncated or invalid JSON near character {pos} of the current chunk") from None
            if end == len(buf) and not eof and more():  # a number may continue in the next chunk
                continue
            pos = end
            return value

    def expect(chars: str) -> str:
        skip_ws()
        if pos >= len(buf) or buf[pos] not in chars:
            got = buf[pos : pos + 20] if pos < len(buf) else "end of file"
            raise ValueError(f"expected one of {chars!r} in the JSON object, got {got!r}")
        return buf[pos]

    expect("{")
    pos += 1
    c = expect('"}')
    if c == "}":
        return
    while True:
        key = decode()
        expect(":")
        pos += 1
        skip_ws()
        value = decode()
        yield key, value
        c = expect(",}")
        pos += 1
        if c == "}":
            return
        expect('"')


def read_mptrj(
    path: str | Path, *, root: Path | None = None, energy_key: str = "uncorrected_total_energy"
) -> Iterator[Item]:
    path = Path(path)
    with open(path) as fh:
        for material_id, frames in iter_object_items(fh):
            if not isinstance(frames, dict):
                raise ValueError(f"material {material_id!r}: expected an object of frames")
            for frame_id, fr in frames.items():

                def build(fr: Any = fr, frame_id: str = frame_id, material_id: str = material_id) -> StructureRecord:
                    numbers, positions, cell, pbc = structure_from_dict(want(fr, "structure", "frame"))
                    stress = fr.get("stress")
                    magmom = fr.get("magmom")
                    if magmom is not None and any(m is None for m in magmom):
                        magmom = None
                    return StructureRecord(
                        positions,
                        numbers,
                        cell,
                        pbc,
                        energy=want(fr, energy_key, "frame"),
                        forces=fr.get("force"),
                        stress=None if stress is None else stress_to_ase(stress, "kbar", sign="compression"),
                        magmoms=magmom,
                        group=str(material_id),
                        id=str(frame_id),
                    )

                yield Item(f"{material_id}/{frame_id}", build)
