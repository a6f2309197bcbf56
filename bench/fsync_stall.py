#!/usr/bin/env python3
"""How long the trail's fdatasync can wait while a checkpoint is written.

One thread appends 1.4 KB records to a file with an fdatasync after each, as the
audit trail does under load; meanwhile a 33 MiB file (the checkpoint of 500,000 firing
alerts) is written and fsynced, either once at the end or a MiB at a time as salve
does. It prints the trail's fdatasync times while the checkpoint was being written.
On ext4 (data=ordered) the trail's fdatasync commits the journal, which waits for the
data of the other file's pending writes.

    python3 bench/fsync_stall.py [DIR]    # DIR on the disk of the data dir (default .)
"""
import os
import sys
import threading
import time

RECORD = b"x" * 1397 + b"\n"
MIB = 1 << 20


def trail(folder, stop, times):
    path = os.path.join(folder, "fsync_stall.trail")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while not stop.is_set():
            t = time.perf_counter()
            os.write(fd, RECORD)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.remove(path)


def checkpoint(folder, in_chunks):
    path = os.path.join(folder, "fsync_stall.checkpoint")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    data = os.urandom(MIB)
    t = time.perf_counter()
    try:
        for _ in range(33):
            os.write(fd, data)
            if in_chunks:
                os.fdatasync(fd)
        os.fsync(fd)
        return time.perf_counter() - t
    finally:
        os.close(fd)
        os.remove(path)


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    print("| checkpoint synced | checkpoint took | trail fdatasyncs meanwhile | p50 | max |")
    print("| --- | --- | --- | --- | --- |")
    for in_chunks in [False, True, False, True, False, True]:
        stop, times = threading.Event(), []
        writer = threading.Thread(target=trail, args=(folder, stop, times))
        writer.start()
        time.sleep(0.5)
        first = len(times)
        took = checkpoint(folder, in_chunks)
        during = sorted(times[first:])
        time.sleep(0.2)
        stop.set()
        writer.join()
        if not during:
            print("no trail fdatasync finished while the checkpoint was written", file=sys.stderr)
            continue
        print(f"| {'a MiB at a time' if in_chunks else 'once, at the end'} | {took * 1e3:.0f} ms "
              f"| {len(during)} | {during[len(during) // 2] * 1e3:.2f} ms | {during[-1] * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
