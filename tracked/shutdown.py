"""Nothing buffered is lost when the process ends: runs still open at exit are ended.

`TrackedRun.start()` registers the run here and `end()` unregisters it. At interpreter exit
(normal, or after an uncaught exception) every run still open is ended, so its buffered metric
points are written, or spooled when the store is down: FINISHED on a normal exit, FAILED after
an uncaught exception, KILLED after SIGTERM.

SIGTERM: a handler is installed, from the main thread at the first run's start (or by
`install()`: Python allows it in the main thread only), only when the current one is SIG_DFL, so
a handler the user installed (or SIG_IGN) is never replaced. Like Ctrl-C, it runs when the main
thread is back in Python code (a long C call delays it). It puts SIG_DFL back at once (a second
SIGTERM kills as before), then:

- when the main thread is inside a run, it raises `Terminated` (a KeyboardInterrupt) there, so
  the user's `with`/`finally` blocks unwind and each run ends KILLED through its normal path;
  raising is what makes this safe: ending a run from inside a signal handler could wait forever
  on a lock the interrupted code holds. When the exception reaches the top, the exit handler
  ends whatever is still open and the process kills itself with SIGTERM, so its exit status is
  the one SIG_DFL gives;
- otherwise (runs in other threads, or none) it ends the open runs KILLED right away and kills
  the process with SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import Any

__all__ = ["Terminated", "install", "live_runs", "register", "unregister"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM while a run is open there; the run ends KILLED."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


_lock = threading.RLock()  # reentrant: the SIGTERM handler may run while the main thread holds it
_runs: dict[int, tuple[Any, int]] = {}  # id(run) -> (run, the thread it started in), in order
_installed = {"atexit": False, "sigterm": False, "explicit": False}
_terminated: list[int] = []  # the signal that asked the process to stop, once it did
_stopping = threading.Event()  # set while this module ends runs itself
# After SIGTERM the sender gets at most this long (Kubernetes' grace period is 30 s by default);
# what it has not sent by then stays in the journals, whole, for `tracked sync`.
SIGTERM_WAIT = 20.0


def register(run: Any) -> None:
    """A run started: end it at exit if nobody does; install the exit and SIGTERM handlers."""
    with _lock:
        _runs[id(run)] = (run, threading.get_ident())
        if not _installed["atexit"]:
            atexit.register(_at_exit)
            if in_worker_process():  # a multiprocessing child exits through its finalizers
                import multiprocessing.util

                multiprocessing.util.Finalize(None, _at_exit, exitpriority=100)
            _installed["atexit"] = True
    _install_sigterm()


def in_worker_process() -> bool:
    """Whether this process is a multiprocessing worker (its exit runs no atexit handlers)."""
    if "multiprocessing" not in sys.modules:
        return False
    import multiprocessing

    return multiprocessing.parent_process() is not None


def unregister(run: Any) -> None:
    """A run has ended. After a SIGTERM that waited for this run to finish writing, act now."""
    with _lock:
        _runs.pop(id(run), None)
        idle = not _runs
    if _terminated and not _stopping.is_set():
        _terminate(_terminated[0])
    elif idle:
        _uninstall_sigterm()


def _uninstall_sigterm() -> None:
    """No run is open: give SIGTERM back its default. A handler left behind would outlive the
    runs it protects (a multiprocessing pool's terminate() could then hang on its workers)."""
    if _installed["explicit"] or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _installed["sigterm"] = False
    except (ValueError, OSError, AttributeError):
        return


def live_runs() -> list[Any]:
    """Runs started and not yet ended, in start order."""
    with _lock:
        return [run for run, _ in _runs.values()]


def _main_thread_has_runs() -> bool:
    main = threading.main_thread().ident
    with _lock:
        return any(thread == main for _, thread in _runs.values())


def install() -> None:
    """Install the SIGTERM handler now (if SIGTERM is still SIG_DFL); call it from the main
    thread in a program whose runs all start in other threads, where Python does not allow it."""
    _installed["explicit"] = True  # kept installed between runs
    _install_sigterm()


def _install_sigterm() -> None:
    if _installed["sigterm"] or threading.current_thread() is not threading.main_thread():
        return
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return  # a worker process: its parent decides how it ends (Pool.terminate sends SIGTERM)
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            _installed["sigterm"] = True  # the user's (or SIG_IGN): keep it, never look again
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or not allowed
        return
    _installed["sigterm"] = True


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM kills at once, as before
    _terminated.append(signum)
    _terminate(signum)


def _terminate(signum: int) -> None:
    runs = live_runs()
    if any(run.ended for run in runs):
        return  # a run is writing its end: let it finish; its unregister() comes back here
    if threading.current_thread() is threading.main_thread() and _main_thread_has_runs():
        raise Terminated(signum)  # unwinds the user's code; each run ends KILLED on the way
    _end_all(Terminated(signum))
    _drain(cap=SIGTERM_WAIT)
    os.kill(os.getpid(), signum)


def _end_all(exc: BaseException | None) -> None:
    """End every open run, innermost (latest started) first."""
    _stopping.set()
    for run in reversed(live_runs()):
        with contextlib.suppress(BaseException):  # one run's error must not keep others open
            run.end(exc)
        unregister(run)


def _at_exit() -> None:
    if _terminated:
        _end_all(Terminated(_terminated[0]))
        _drain(cap=SIGTERM_WAIT)
        signal.signal(_terminated[0], signal.SIG_DFL)
        os.kill(os.getpid(), _terminated[0])
        return
    uncaught = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    _end_all(uncaught if isinstance(uncaught, BaseException) else None)
    _drain()


def _drain(cap: float | None = None) -> None:
    """Give the sender up to `exit_wait` seconds (at most `cap`) to send what the runs logged;
    say what is left (it stays in the journals, for `tracked sync`)."""
    from tracked import journal
    from tracked.problems import store_failure_summary

    journal.flush_all()
    if "tracked.sender" not in sys.modules:
        return
    from tracked.config import resolve
    from tracked.feedback import exit_line
    from tracked.sender import sender

    try:
        settings = resolve()
    except Exception:  # a malformed pyproject.toml at exit: use the defaults' wait
        settings = None
    wait = settings.exit_wait if settings is not None else 60.0
    if cap is not None:
        wait = min(wait, cap)
    left = sender().drain(wait)
    summary = store_failure_summary()
    if summary:
        sys.stderr.write(summary + "\n")
    if left:
        failure = next((s.failure for s in left if s.failure is not None), None)
        reason = (
            "the store is unreachable" if failure is not None else f"still sending after {wait:g} s"
        )
        spool = str(left[0].directory.parent)
        sys.stderr.write(exit_line(len(left), spool, reason) + "\n")
