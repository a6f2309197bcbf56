# Slowloris against salve, for tests/it/slow_clients.rs: keeps COUNT connections
# that send a request's headers a byte at a time and never finish them, opening a
# new one whenever salve closes one, for HOLD seconds. Prints "flooding" once the
# first COUNT are open, then one JSON line: how long each connection lived.
#
#   python3 slowloris.py PORT COUNT HOLD
import collections
import json
import selectors
import socket
import sys
import time

port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
selector = selectors.DefaultSelector()
opened_at = {}
lifetimes = []
freed_at = collections.deque()  # when salve closed a connection: its slot is taken back 0.5 s later
connect_failures = 0


def open_one():
    """Opens one more slow connection; False when salve's port did not take it."""
    global connect_failures
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: salve\r\nX-Slow: ")
    except OSError:
        connect_failures += 1
        freed_at.append(time.monotonic())
        s.close()
        return False
    s.setblocking(False)
    opened_at[s] = time.monotonic()
    selector.register(s, selectors.EVENT_READ)
    return True


def closed(s):
    now = time.monotonic()
    lifetimes.append(now - opened_at.pop(s))
    freed_at.append(now)
    selector.unregister(s)
    s.close()


# Bounded, for a salve whose queue is full and takes nothing.
begun = time.monotonic()
for _ in range(count):
    if time.monotonic() - begun > 10:
        break
    open_one()
print("flooding", flush=True)

start = time.monotonic()
last_trickle = start
while time.monotonic() - start < hold:
    # A closed or reset connection is readable.
    for key, _ in selector.select(timeout=0.05):
        try:
            data = key.fileobj.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            closed(key.fileobj)
    now = time.monotonic()
    if now - last_trickle >= 1.0:
        last_trickle = now
        for s in list(opened_at):
            try:
                s.send(b"a")
            except BlockingIOError:
                pass
            except OSError:
                closed(s)
    # Like an attacker, take back every slot salve frees, a little later (so that
    # this script leaves the machine's CPU to salve and the test's real client).
    while freed_at and now - freed_at[0] >= 0.5:
        freed_at.popleft()
        if not open_one():
            break

now = time.monotonic()
print(json.dumps({
    "lifetimes": lifetimes,
    "open_ages": [now - t for t in opened_at.values()],
    "connect_failures": connect_failures,
}), flush=True)
