"""Video sources (PyAV, GStreamer) that yield decoded frames; knows nothing of faces or Kafka.

Modules, one job each:

- ``frame``: ``Frame`` (stream id, picture index, pts, wall time, RGB uint8 HxWx3).
- ``source``: the ``Source`` interface (open / iterate / close / stats, context manager),
  ``DecodeOptions`` (``max_fps`` decimation before RGB conversion, maximum size).
- ``av_source``: ``AvSource``, PyAV for files, RTSP (TCP/UDP), HTTP(S)/HLS and V4L2, with
  optional hardware decoding (``hwaccel``) that falls back to software and says why.
- ``hwaccel``: which hardware device types FFmpeg offers, and whether one opens here.
- ``open``: ``open_source(location, backend)``, a bare source for files, a supervised one
  for live streams (``fqm bench decode`` uses it).
- ``gst_source``: ``GstSource``, GStreamer (``uridecodebin`` / ``rtspsrc`` or a user pipeline).
- ``supervisor``: ``SupervisedSource``, reconnects with backoff, stall watchdog, crash-loop cap,
  status ``events``; ``backoff`` holds the delay policy.
- ``queueing``: the bounded hand-off queue and ``paced`` real-time replay of files.
- ``threaded``: ``ThreadedSource``, one decoding thread per stream.
- ``urls``: ``mask_url`` (no password in any message, log line or event) and location kinds.
- ``errors``: ``SourceError`` and subclasses that are also ``OSError`` / ``TimeoutError`` / ...

Backpressure: a live stream never waits for its consumer. Its queue holds
``queueing.LIVE_QUEUE_SIZE`` (2) frames and drops the OLDEST when full, counting drops in
``stats.dropped``; a file's queue holds ``FILE_QUEUE_SIZE`` (8) and blocks the decoder, so
every frame is processed exactly once. ``paced`` replays a file at its pts rate instead.

Many streams in one process: give each stream its own thread (``SupervisedSource`` and
``ThreadedSource`` do). FFmpeg and GStreamer release the GIL while demuxing, decoding and
converting to RGB, which is nearly all of the work, so threads use every core; the Python
left per frame (wrapping the array in a ``Frame``, the queue) is microseconds. Within one
stream FFmpeg's frame threading (``thread_type="AUTO"``) spreads decoding across cores too,
so with many streams per core, fewer decoder threads per stream are enough.
"""
