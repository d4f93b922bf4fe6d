"""A process of the reconciler killed (SIGKILL) at a given moment of a file's write, as a
lost node, an OOM kill or `kill -9` would: for the tests of what a killed run leaves (the
CLI's, the operator's) and of what the next run does with it."""

from __future__ import annotations

# Run as `python -c KILLED_AT_A_RENAME WHEN PATH ARGS...`: `reconciler ARGS...`, which kills
# itself (SIGKILL) when it is about to rename a file onto PATH (WHEN "before"), or at the
# first file it opens once it did ("after"), or once it made a temporary file next to PATH
# ("created": at the first file it opens after that one, before a byte is written). No
# write of a file happens without an open: that is where a record of the file would be
# written.
KILLED_AT_A_RENAME = """
import os, runpy, signal, sys
when, target = sys.argv.pop(1), os.path.normpath(sys.argv.pop(1))
renamed = False
def hook(event, args):
    global renamed
    if event == "os.rename" and os.path.normpath(os.fspath(args[1])) == target:
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        renamed = True
    elif event == "open" and renamed:
        os.kill(os.getpid(), signal.SIGKILL)
    elif (event == "open" and when == "created" and isinstance(args[0], (str, bytes, os.PathLike))
          and os.path.normpath(os.fsdecode(args[0])).startswith(target + ".")
          and os.fsdecode(args[0]).endswith(".tmp")):
        renamed = True  # the next open kills it
sys.addaudithook(hook)
sys.argv[0] = "reconciler"
runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
"""
