"""Lambda SnapStart runtime hooks: work done before the snapshot, state rebuilt after a restore.

With SnapStart, Lambda runs a function's init once per published version, snapshots the
execution environment, and resumes every new environment of that version from the same
snapshot (docs/PERFORMANCE.md). Whatever init built is therefore shared by every restored
environment: open sockets and TLS sessions, cached tokens and their expiry, pseudo-random
state, ids. Components that hold such state register here when they are built:

* ``before_snapshot(fn)``: work worth doing once, before the snapshot (warm imports, schema
  builds); nothing here may open a connection (none may be in the snapshot).
* ``after_restore(fn)``: rebuild or forget what must not be shared (pooled connections,
  tokens, the Snowflake session, random state). Must be fast: Lambda gives the runtime and these
  hooks 10 s, and their time is billed and waited for by the first request.

The managed Python runtime ships ``snapshot_restore_py``; it is imported lazily and, when
present, runs this module's two dispatchers. Elsewhere (tests, the local stack, the bench) the
hooks stay in this module's registry and ``simulate_restore()`` runs them the same way, so the
code paths Lambda runs are the ones tested. Bound methods are held weakly: an object that is
gone (a test's pipeline) is skipped, never kept alive by its hook.

Order follows the runtime's rule: before-snapshot hooks in reverse order of registration,
after-restore hooks in order of registration. A hook that fails does not stop the others; the
failures are re-raised together after all ran (a half-restored environment must not serve).
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Hook = Callable[[], None]
_PRUNE_AT = 256  # registrations before hooks of collected owners are dropped


@dataclass
class HookTiming:
    """What one run of a phase cost: seconds per hook (by name) and in total."""

    phase: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


class SnapshotHookError(RuntimeError):
    """One or more hooks failed; the message names them (never their exception text)."""


class _Ref:
    """A hook: a function held strongly, a bound method held weakly, or ``fn(owner)`` with the
    owner held weakly (for objects whose class is not ours, e.g. an ``httpx.Client``)."""

    def __init__(self, fn: Callable[..., None], name: str | None, owner: object | None) -> None:
        self.name: str = name or str(getattr(fn, "__qualname__", None) or repr(fn))
        self._fn: Callable[..., None] | None = None
        self._method: weakref.WeakMethod[Hook] | None = None
        self._owner: weakref.ref[object] | None = None
        if owner is not None:
            self._fn, self._owner = fn, weakref.ref(owner)
        elif getattr(fn, "__self__", None) is not None and hasattr(fn, "__func__"):
            self._method = weakref.WeakMethod(fn)
        else:
            self._fn = fn

    def get(self) -> Hook | None:
        if self._method is not None:
            return self._method()
        if self._owner is not None:
            owner = self._owner()
            fn = self._fn
            if owner is None or fn is None:
                return None
            return lambda: fn(owner)
        return self._fn


class HookRegistry:
    """The hooks of one process (``REGISTRY``); tests may build their own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._before: list[_Ref] = []
        self._after: list[_Ref] = []
        self.restores = 0  # after-restore runs (tests, metrics)
        self.last_restore: HookTiming | None = None
        self.last_snapshot: HookTiming | None = None

    def before_snapshot(
        self, fn: Callable[..., None], *, name: str | None = None, owner: object | None = None
    ) -> None:
        with self._lock:
            self._before.append(_Ref(fn, name, owner))
            if len(self._before) > _PRUNE_AT:
                self._prune()  # a process that builds many short-lived clients (tests, CLI)
        _attach_runtime()

    def after_restore(
        self, fn: Callable[..., None], *, name: str | None = None, owner: object | None = None
    ) -> None:
        with self._lock:
            self._after.append(_Ref(fn, name, owner))
            if len(self._after) > _PRUNE_AT:
                self._prune()  # a process that builds many short-lived clients (tests, CLI)
        _attach_runtime()

    def run_before_snapshot(self) -> HookTiming:
        with self._lock:
            refs = list(reversed(self._before))
        timing = _run("before_snapshot", refs)
        self.last_snapshot = timing
        return timing

    def run_after_restore(self) -> HookTiming:
        with self._lock:
            refs = list(self._after)
            self._prune()
        timing = _run("after_restore", refs)
        self.restores += 1
        self.last_restore = timing
        return timing

    def simulate_restore(self) -> HookTiming:
        """What Lambda does between publish and the first request of a restored environment:
        the before-snapshot hooks, then the after-restore hooks. Returns the latter's timing."""
        self.run_before_snapshot()
        return self.run_after_restore()

    def counts(self) -> tuple[int, int]:
        """(before-snapshot, after-restore) hooks whose owner is still alive."""
        with self._lock:
            self._prune()
            return len(self._before), len(self._after)

    def clear(self) -> None:
        with self._lock:
            self._before.clear()
            self._after.clear()

    def _prune(self) -> None:
        self._before = [r for r in self._before if r.get() is not None]
        self._after = [r for r in self._after if r.get() is not None]


def _run(phase: str, refs: list[_Ref]) -> HookTiming:
    timing = HookTiming(phase)
    failed: list[str] = []
    for ref in refs:
        fn = ref.get()
        if fn is None:
            continue
        started = time.perf_counter()
        try:
            fn()
        except Exception:  # noqa: BLE001 - run every hook, then report (names only)
            failed.append(ref.name)
        timing.seconds[ref.name] = timing.seconds.get(ref.name, 0.0) + (
            time.perf_counter() - started
        )
    if failed:
        raise SnapshotHookError(f"{phase} hooks failed: {', '.join(sorted(set(failed)))}")
    return timing


REGISTRY = HookRegistry()

_attached = False
_attach_lock = threading.Lock()


def _attach_runtime() -> None:
    """Hand the two dispatchers to the managed runtime once, if it is there."""
    global _attached
    if _attached:
        return
    with _attach_lock:
        if _attached:
            return
        _attached = True
        try:
            import snapshot_restore_py  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return  # not on Lambda's managed runtime: simulate_restore() runs them
        runtime: Any = snapshot_restore_py
        runtime.register_before_snapshot(REGISTRY.run_before_snapshot)
        runtime.register_after_restore(REGISTRY.run_after_restore)


def before_snapshot(
    fn: Callable[..., None], *, name: str | None = None, owner: object | None = None
) -> None:
    """Run ``fn()`` (or ``fn(owner)`` while ``owner`` lives) before the snapshot."""
    REGISTRY.before_snapshot(fn, name=name, owner=owner)


def after_restore(
    fn: Callable[..., None], *, name: str | None = None, owner: object | None = None
) -> None:
    """Run ``fn()`` (or ``fn(owner)`` while ``owner`` lives) after every restore."""
    REGISTRY.after_restore(fn, name=name, owner=owner)


def simulate_restore() -> HookTiming:
    return REGISTRY.simulate_restore()


def _reseed_random() -> None:
    # The module-level generator (used for jitter here and in libraries) was seeded once at
    # init: without a new seed every restored environment draws the same sequence.
    random.seed()


# Registered at import: every function that imports the library gets a fresh global seed.
after_restore(_reseed_random, name="random.seed")
