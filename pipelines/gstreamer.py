"""Loading GStreamer (through PyGObject) safely into a process that also runs C++ libraries."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from types import ModuleType


@functools.cache
def load_gst() -> ModuleType:
    """Import and initialise ``Gst`` once; return the ``gi.repository.Gst`` module.

    GStreamer links the system ``libunwind``, whose ``_Unwind_Resume`` would otherwise bind
    ahead of libgcc's for C++ libraries loaded later (matplotlib's ft2font under MediaPipe,
    seen here): their first thrown exception then aborts the process. Loading libgcc_s into
    the global namespace first keeps C++ unwinding on libgcc.

    Raises:
        ImportError: PyGObject or GStreamer's introspection data is not installed.
    """
    with contextlib.suppress(OSError):  # not a glibc system: nothing to pin
        ctypes.CDLL("libgcc_s.so.1", mode=os.RTLD_GLOBAL)
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError) as exc:
        raise ImportError(
            "GStreamer is unavailable: install PyGObject and Debian's gir1.2-gstreamer-1.0 "
            f"(scripts/bootstrap.sh does both) ({exc})"
        ) from exc
    Gst.init(None)
    return Gst
