"""Processes as the check scripts (shell/npx_check.py, shell/claude_kit.py) see
them: a PID with its start time names one process, and a wait for its end waits
on a pidfd (Linux 5.3+), with a deadline, never on a sleep."""

import os
import select


def start_time(pid):
    """Field 22 of /proc/PID/stat, or None once the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def wait_gone(pid, start, timeout):
    """Whether the process PID that started at START has exited within TIMEOUT
    seconds (true at once when it is gone, or the PID is another process's)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        # The PID may have become another process's before the pidfd was made.
        if start_time(pid) != start:
            return True
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0, timeout) * 1000))
    finally:
        os.close(fd)
