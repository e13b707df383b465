"""gfm_ase.fileio.exclusive_lock: one holder at a time, refused at once, released by a killed holder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from gfm_ase.fileio import LockedError, exclusive_lock


def test_a_held_lock_refuses_a_second_holder_and_a_kill_9_releases_it(tmp_path):
    lock = tmp_path / "run" / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from gfm_ase.fileio import exclusive_lock
        with exclusive_lock({str(lock)!r}, "test run"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"run is in use by another test run \(pid {holder.pid}, lock x.lock\)"):
            with exclusive_lock(lock, "test run"):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with exclusive_lock(lock, "test run"):  # the kernel dropped the dead holder's lock: nothing to clean up
        assert lock.read_text().strip() == str(os.getpid())
    with exclusive_lock(lock, "test run"):  # and a finished holder's
        pass
