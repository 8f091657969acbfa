"""The registry lock: mutual exclusion for alias changes of one registered model.

MLflow has no compare-and-set on aliases, so concurrent promoters of one model serialise on a
lock: the registered model `<name>.tracked-lock`, tagged `tracked.lock` and with its owner (host,
pid, a random id) in `tracked.lock.owner`. Creating a registered model is atomic (names are
unique), so creating the lock enters and taking it away leaves.

- A create whose answer was lost (a timeout, a dropped connection, a gateway's 5xx) may have
  happened: the lock is then looked up, and if its owner tag is ours we hold it. While the store
  does not answer, the look-up is repeated for up to `LOCK_RESOLVE` seconds.
- Staleness compares two timestamps of the server, never a client's clock: a waiter touches the
  lock (updating its description makes the server stamp `last_updated_timestamp`) and compares
  that with the lock's `creation_timestamp`.
- A lock older than `LOCK_STALE` is broken by renaming it to a name derived from its owner
  (`<lock>.stale-<digest>`) and deleting it only if what was renamed is the lock judged stale; a
  fresh lock renamed in a race is put back. Two breakers of one stale lock cannot both succeed:
  the second rename finds the name taken. Leaving renames and checks the same way, by our owner.
- Before it moves an alias, the holder checks that the lock is still its own
  (RegistryLockedError "lost the registry lock" otherwise: nothing moved).
- A promoter that cannot take the lock within `LOCK_TIMEOUT` (longer than `LOCK_STALE`, so a
  crashed holder's lock is always broken in time) raises RegistryLockedError: nothing changed,
  and a caller such as `tracked sync` can keep the promotion for later.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracked import tags
from tracked.errors import (
    AuthenticationError,
    NotFoundError,
    RegistryLockedError,
    StoreRejectedError,
    StoreUnavailableError,
    TrackingError,
)

if TYPE_CHECKING:
    from tracked.store import Store

__all__ = ["LOCK_STALE", "LOCK_SUFFIX", "LOCK_TIMEOUT", "RegistryLock", "registry_lock"]

logger = logging.getLogger("tracked")

LOCK_SUFFIX = ".tracked-lock"
LOCK_STALE = 120.0  # seconds (server clock): a lock older than this was left by a crashed process
LOCK_TIMEOUT = 180.0  # seconds to wait for the lock: longer than LOCK_STALE
LOCK_RESOLVE = 60.0  # seconds to keep asking whether a create whose answer was lost went through
AGE_CHECK_EVERY = 5.0  # seconds between asking the server how old a held lock is


@contextlib.contextmanager
def registry_lock(store: Store, name: str, timeout: float | None = None) -> Iterator[RegistryLock]:
    """Mutual exclusion across processes and machines for alias changes of `name`."""
    lock = RegistryLock(store, name)
    lock.take(LOCK_TIMEOUT if timeout is None else timeout)
    try:
        yield lock
    finally:
        lock.release()


class RegistryLock:
    """The registered model `<name>.tracked-lock`; see the module docstring for the protocol."""

    def __init__(self, store: Store, model: str) -> None:
        self.store, self.model, self.name = store, model, model + LOCK_SUFFIX
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.taken_at: float | None = None  # monotonic, for messages only

    def take(self, timeout: float) -> None:
        started = time.monotonic()
        delay, next_age_check = 0.01, started
        unsure_since: float | None = None  # a create whose answer was lost may have made it
        while True:
            down = self.store.down()
            if down is not None and unsure_since is None:
                raise down  # nothing was sent: there is nothing to find out
            if down is None:
                try:
                    self._create()
                    break
                except StoreRejectedError as error:
                    if error.code != "RESOURCE_ALREADY_EXISTS":
                        raise
                except NotFoundError:
                    pass  # the store raced our create against the holder's leaving
                except StoreUnavailableError:
                    unsure_since = unsure_since or time.monotonic()
            held: _Held | None = None
            try:
                held = self._read(self.name)
            except StoreUnavailableError:
                if unsure_since is None or time.monotonic() - unsure_since > LOCK_RESOLVE:
                    raise
            else:
                unsure_since = None  # the store answered: the lock is ours, absent or theirs
                if held is not None and held.owner == self.owner:
                    break  # our create went through; its answer was lost
            now = time.monotonic()
            if held is not None and now >= next_age_check:
                next_age_check = now + AGE_CHECK_EVERY
                if self._break_if_stale(held):
                    continue
            if now - started > timeout and unsure_since is None:
                raise RegistryLockedError(
                    self.model, self.name, now - started, stale_after=LOCK_STALE
                )
            time.sleep(delay)  # back off between attempts at an atomic create, not a sync sleep
            delay = min(delay * 2, 0.5)
        self.taken_at = time.monotonic()

    def check(self) -> None:
        """Raise RegistryLockedError unless the lock is still ours (it was not broken as stale)."""
        held = self._read(self.name)
        if held is None or held.owner != self.owner:
            waited = time.monotonic() - (self.taken_at or time.monotonic())
            raise RegistryLockedError(
                self.model, self.name, waited, stale_after=LOCK_STALE, lost=True
            )

    def release(self) -> None:
        target = f"{self.name}.released-{uuid.uuid4().hex[:12]}"
        try:
            self._take_away(_Held(self.owner), target)
        except TrackingError as error:
            logger.warning(
                "tracked: could not release the registry lock %r (%s); another promotion "
                "breaks it once it is %.0f s old",
                self.name,
                error,
                LOCK_STALE,
            )

    # -- steps ----------------------------------------------------------------------------------

    def _create(self) -> None:
        description = f"tracked: lock for alias changes of {self.model}; safe to delete if stale"
        self.store.call(
            lambda c: c.create_registered_model(
                self.name,
                tags={tags.LOCK: "true", tags.LOCK_OWNER: self.owner},
                description=description,
            ),
            what=f"take the registry lock {self.name!r}",
            idempotent=False,
        )

    def _read(self, name: str) -> _Held | None:
        found = self.store.get_or_none(
            lambda c: c.get_registered_model(name), what=f"read the registry lock {name!r}"
        )
        return None if found is None else _Held(tags.lock_owner(found.tags or {}))

    def _break_if_stale(self, held: _Held) -> bool:
        """Break `held` if the server says it is older than LOCK_STALE; True if it was broken."""
        description = f"tracked: lock for alias changes of {self.model}; seen by {self.owner}"
        try:
            # The server stamps last_updated_timestamp: "now" by the clock that stamped
            # creation_timestamp, whatever this machine's clock says.
            touched = self.store.call(
                lambda c: c.update_registered_model(self.name, description=description),
                what=f"read the age of the registry lock {self.name!r}",
            )
        except (NotFoundError, StoreRejectedError, AuthenticationError):
            return False  # gone meanwhile, or this user may not touch it: wait for its holder
        if touched is None or not touched.creation_timestamp or not touched.last_updated_timestamp:
            return False
        age = (touched.last_updated_timestamp - touched.creation_timestamp) / 1000
        if age <= LOCK_STALE:
            return False
        digest = hashlib.sha256(str(held.owner).encode()).hexdigest()[:16]
        broken = self._take_away(held, f"{self.name}.stale-{digest}")
        if broken:
            logger.warning(
                "tracked: broke the registry lock %r of %s, held for %.0f s (over %.0f s)",
                self.name,
                held.owner,
                age,
                LOCK_STALE,
            )
        return broken

    def _take_away(self, expected: _Held, target: str) -> bool:
        """Compare-and-delete: rename the lock to `target` (atomic: it fails when the lock is
        gone or `target` exists), delete it if it is the lock `expected`, else put it back."""
        try:
            self.store.call(
                lambda c: c.rename_registered_model(self.name, target),
                what=f"take away the registry lock {self.name!r}",
                idempotent=False,
            )
        except (NotFoundError, StoreRejectedError, AuthenticationError):
            # gone already, another promoter took this very lock away first, or this user may
            # not touch another user's lock (an auth server): it waits for its holder instead
            return False
        moved = self._read(target)
        if moved is not None and moved == expected:
            with contextlib.suppress(NotFoundError):
                self.store.call(
                    lambda c: c.delete_registered_model(target),
                    what=f"delete the registry lock {target!r}",
                    idempotent=False,
                )
            return True
        try:  # a fresh lock was renamed in a race: give it back to its holder
            self.store.call(
                lambda c: c.rename_registered_model(target, self.name),
                what=f"restore the registry lock {self.name!r}",
                idempotent=False,
            )
        except (NotFoundError, StoreRejectedError) as error:
            logger.warning(
                "tracked: could not restore the registry lock %r from %r (%s); its holder "
                "will find it lost and promote nothing",
                self.name,
                target,
                error,
            )
        return False


@dataclass(frozen=True)
class _Held:
    owner: str | None
