"""The memory-aware scheduling policy the executor asks which ready stages may start.

For each ready stage: resolve its footprint (calibration or model), decide against the live
probe and the machine-wide ledger (refuse, wait, right-size, admit with a cap), and book
what it admits, all under the ledger's lock, so concurrent runs never over-book the box.
Small stages (at most 1/16 of the box each) are given memory from the run's lease (see
:class:`blut_core.broker.ledger.Lease`) instead: one booking, grown a few stages' worth at a
time under the lock, from which most small stages are admitted without taking it. A small
stage still running after :data:`PROMOTE` seconds moves from the lease to a booking of its
own (with its cgroup) in the run's next transaction: it is then shown, and counted (only
what it does not use yet), as any booked stage; a short stage never costs a transaction.

When a stage ends its booking is released and calibration learns: a clean peak (what the
stage needed, without page cache), or the cap an OOM kill hit as a lower bound, so a retry
resolves an escalated cap, clamped to what the box can give (an attempt killed at that
clamp is not retried); an OOM bound already there refuses the stage up front, naming it, its
measured lower bound and the box.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from blut_core.broker.admission import ADMIT, REFUSE, WAIT, Admission, Budget, admit
from blut_core.broker.calibration import CalibrationKey
from blut_core.broker.config import BrokerConfig
from blut_core.broker.ledger import Booking, Lease, Ledger, Transaction
from blut_core.broker.machine import Probe, probe
from blut_core.broker.resolve import Estimator
from blut_core.host.log import get_logger
from blut_core.model.outcome import Classification, StageOutcome, StageState
from blut_core.model.sizes import MiB, format_size
from blut_core.run.scheduling import BookedRun, Launch, PolicyView, Refusal

if TYPE_CHECKING:
    from blut_core.model.stage import Stage
    from blut_core.run.attempt import Attempt
    from blut_core.store.rundir import RunDir

RECHECK = 0.25  # seconds between looks while a stage waits for memory
SMALL_SHARE = 16  # a stage of at most 1/16 of the box is given memory from the run's lease
LEASE_MIN = 256 * MiB  # the least a lease keeps beyond what it has given out
TURN = 0.05  # seconds a probe serves admissions from the lease (one read per scheduler turn)
PROMOTE = 0.25  # seconds after which a stage running on leased memory gets its own booking


def lease_block(need: int, box: int, jobs: int) -> int:
    """What a lease keeps beyond what it gives out: ``jobs`` stages of ``need`` bytes, at
    least :data:`LEASE_MIN`, at most 1/16 of the box (never less than one stage)."""
    return max(need, min(max(LEASE_MIN, need * jobs), box // SMALL_SHARE))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), the default for ``--jobs``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def exhausted_reason(stage: str, bound: int, box: int, floor: int) -> str:
    """The one message of a stage whose OOM bound cannot grow within the box."""
    return (f"stage {stage!r} was OOM-killed at {format_size(bound)}, its measured lower bound; "
            f"it needs more than this box can ever give ({format_size(box)} box − "
            f"{format_size(floor)} floor = {format_size(max(0, box - floor))})")


def booked_by_run(ledger: Ledger) -> tuple[BookedRun, ...]:
    """The ledger's live bookings grouped by the process (run) that made them, this run first."""
    groups: dict[int, list[Booking]] = {}
    for b in ledger.bookings():
        groups.setdefault(b.pid, []).append(b)
    me = os.getpid()
    out = [BookedRun(pid=pid, command="this run" if pid == me else command_of(pid),
                     bytes=sum(b.bytes for b in bs), outstanding=sum(b.outstanding() for b in bs),
                     stages=tuple(b.label for b in bs), own=pid == me)
           for pid, bs in groups.items()]
    return tuple(sorted(out, key=lambda r: (not r.own, -r.bytes, r.pid)))


def command_of(pid: int, limit: int = 60) -> str:
    """What process ``pid`` runs, as a person would type it (``blut run cook:train``)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return f"pid {pid}"
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv = argv[1:]
        if argv[:1] == ["-m"]:
            argv = argv[1:]
    if not argv:
        return f"pid {pid}"
    text = " ".join([os.path.basename(argv[0]), *argv[1:]])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decide_stage(estimator: Estimator, stage: Stage, snap: Probe, booked: int,
                 config: BrokerConfig, *, idle: bool = False,
                 lease: int | None = None) -> tuple[Admission, dict[str, Any]]:
    """Admission of ``stage`` now, and the facts behind it (the ``stage_admitted`` detail).

    ``idle``: no blut stage on the machine holds a booking, so waiting frees nothing; an
    escalated OOM bound that does not fit is then clamped to what is free (see
    :func:`clamp_to_idle_box`). ``ceiling_bytes`` in the detail is the most the stage could
    be given: an attempt OOM-killed at it is not retried. ``lease``: decide against that
    many bytes free (what the run's lease has not given out) instead of the machine's.
    """
    box = snap.box
    floor = config.floor_for(box)
    budget = Budget(box=box, available=snap.available, booked=booked, floor=floor)
    gate = budget if lease is None else Budget(box=box, available=lease + floor, booked=0,
                                               floor=floor)
    requested = estimator.requested(stage)
    resolved = estimator.resolve(stage, requested, box=box, floor=floor)
    detail: dict[str, Any] = {
        "source": resolved.source, "model_bytes": resolved.model,
        "calibrated_bytes": resolved.calibrated, "box_bytes": box,
        "available_bytes": snap.available, "booked_bytes": booked, "floor_bytes": floor,
        "calibration_key": estimator.key(stage, requested).text,
        "input_bytes": estimator.input_bytes(stage), "ceiling_bytes": budget.ceiling,
    }
    if lease is not None:
        detail["lease_free_bytes"] = lease
    if resolved.exhausted and resolved.bound is not None:
        return Admission(decision=REFUSE, footprint=resolved.bytes, cap=None, drivers=requested,
                         reason=exhausted_reason(stage.name, resolved.bound, box, floor)), detail
    knobs = stage.footprint.knobs if stage.footprint else {}
    need_at = estimator.need_at(stage, box=box, floor=floor)
    adm = admit(stage.name, lambda d: resolved.bytes if d == requested else need_at(d),
                requested, knobs, gate, config.headroom_for)
    if adm.drivers != requested:
        detail["calibration_key"] = estimator.key(stage, adm.drivers).text
    if adm.decision == WAIT and idle and lease is None and resolved.bound is not None \
            and budget.box > 0:
        adm = clamp_to_idle_box(stage.name, adm, resolved.bound, budget, config.step_for(box))
        detail["ceiling_bytes"] = budget.free
    return adm, detail


def clamp_to_idle_box(stage: str, waiting: Admission, bound: int, budget: Budget,
                      step: int) -> Admission:
    """An escalated OOM bound that waits on a box where no blut stage holds memory.

    ``box − floor`` is never all free: the driver, the kernel and other processes hold some
    of it. Waiting cannot change that, so what is free now is the most the box can give:
    the stage gets all of it (footprint and cap), or, when that is not at least ``step``
    more than the cap it was killed at, it is refused.
    """
    room = budget.free
    held = f"{format_size(budget.box)} box − {format_size(budget.box - budget.available)} in " \
           f"use by other processes − {format_size(budget.floor)} floor"
    if room < bound + step:
        return Admission(decision=REFUSE, footprint=waiting.footprint, cap=None,
                         drivers=waiting.drivers,
                         reason=f"stage {stage!r} was OOM-killed at {format_size(bound)}, and this "
                                f"box can give it at most {format_size(room)} now ({held})")
    return Admission(decision=ADMIT, footprint=room, cap=room, drivers=waiting.drivers,
                     knobs=waiting.knobs,
                     reason=f"escalated to {format_size(room)}, all this box can give now "
                            f"({held}; {format_size(waiting.footprint)} would not fit)")


class MemoryPolicy:
    """A :class:`blut_core.SchedulingPolicy` that never books more than the box."""

    def __init__(self, *, estimator: Estimator, ledger: Ledger, config: BrokerConfig,
                 containment: str = "", learn: bool = True,
                 probe_fn: Callable[[], Probe] = probe, max_parallel: int | None = None,
                 reserve_after: float = 30.0) -> None:
        self.estimator = estimator
        self.ledger = ledger
        self.config = config
        self.containment = containment
        self.learn = learn
        self._probe = probe_fn
        self.max_parallel = max_parallel if max_parallel is not None else usable_cpus()
        self.reserve_after = reserve_after
        self._sizes: dict[str, int] = {}
        self._last_probe: Probe | None = None
        self._probed_at = 0.0  # monotonic time of _last_probe
        self._lease = Lease()
        self._block = 0  # what the lease keeps beyond what it gave out (set as it grows)
        self._lease_keep: int | None = None  # slack the lease keeps after the next transaction
        self._booked = 0  # booked on the machine, as the last transaction saw it
        self._on_lease: dict[str, tuple[float, str | None]] = {}  # started: (when, cgroup)
        self._to_attach: dict[str, str] = {}
        self._to_release: list[str] = []
        self._bookings: dict[str, str] = {}
        self._admitted: dict[str, Admission] = {}
        self._waiting: dict[str, float] = {}
        self._why: dict[str, str] = {}
        self.log = get_logger()

    def bind_run(self, rundir: RunDir) -> None:
        """The run's directory: a stage's key and footprint follow the bytes its inputs hold."""
        self.estimator.outputs = rundir.out_dir

    # -- SchedulingPolicy ---------------------------------------------------------------

    def choose(self, ready: Sequence[Stage], running: Sequence[Attempt]) -> list[Launch | Refusal]:
        """Launch, refuse or (by leaving out) keep waiting each ready stage.

        Never blocks: a stage that must wait is offered again after :meth:`next_check`.
        With nothing of this run running, a stage that has waited longer than
        ``BLUT_ADMISSION_TIMEOUT`` for memory other processes hold is refused.
        """
        free = self.max_parallel - len(running)
        decisions = self._pass(ready, free) if free > 0 and ready else []
        if self._lease.id is not None and not self._lease.given:
            self._lease_keep = 0  # nothing small runs: the lease goes back
        self._release_pending()  # when no pass wrote them
        if decisions or running or not ready:
            return decisions
        first = min(self._waiting.get(s.name, time.monotonic()) for s in ready)
        if time.monotonic() - first > self.config.wait_timeout:
            return [Refusal(stage=s, reason=f"waited {self.config.wait_timeout:.0f}s for "
                                            f"memory: {self._why.get(s.name, '')}")
                    for s in ready]
        return []

    def started(self, attempt: Attempt) -> None:
        """Note the stage's cgroup for its booking (the ledger then counts only unused bytes).

        The note rides along with this run's next ledger transaction (an admission pass or a
        release) instead of costing one of its own: until then the booking counts in full,
        which only errs on the safe side, and a short stage never needs it at all.
        """
        name = attempt.stage.name
        if name in self._lease.given:
            self._on_lease[name] = (time.monotonic(), attempt.handle.cgroup)
        booking = self._bookings.get(name)
        if booking is not None and attempt.handle.cgroup is not None:
            self._to_attach[booking] = attempt.handle.cgroup

    def finished(self, attempt: Attempt, outcome: StageOutcome) -> None:
        """Release the booking; learn from the kernel's peak or from an OOM kill.

        The release is written by the next :meth:`choose` (the executor asks right after a
        stage ends), in the same ledger transaction that books the stages started in its
        place: one transaction per pass instead of one per event. Until then the memory
        stays booked, which only errs on the safe side.
        """
        name = attempt.stage.name
        booking = self._bookings.pop(name, None)
        self._on_lease.pop(name, None)
        if self._lease.take_back(name) and self._lease.slack > 2 * self._block:
            self._lease_keep = self._block
        if booking is not None:
            self._to_attach.pop(booking, None)
            self._to_release.append(booking)
        adm = self._admitted.pop(name, None)
        if adm is None or not self.learn:
            return
        key: CalibrationKey = self.estimator.key(attempt.stage, adm.drivers)
        if outcome.classification is Classification.OOM and attempt.cap:
            entry = self.estimator.store.record_oom(key, attempt.cap)
            self.log.info("calibration_oom", stage=name, bound=entry.peak, key=key.text)
        elif outcome.state is StageState.OK and outcome.peak_bytes:
            self.estimator.store.record_peak(key, outcome.peak_bytes, attempt.cap,
                                             seconds=outcome.duration,
                                             inputs=self.estimator.input_bytes(attempt.stage))

    def next_check(self) -> float | None:
        """While a stage waits for memory, look again shortly."""
        return RECHECK if self._waiting else None

    def close(self) -> None:
        """Release bookings still held (there should be none) and save calibration."""
        self._to_release += self._bookings.values()
        self._bookings.clear()
        self._lease.given.clear()
        self._lease.used = 0
        self._on_lease.clear()
        self._lease_keep = 0
        self._release_pending()
        self.estimator.store.flush()

    def _release_pending(self) -> None:
        """Write the releases no admission pass has written yet, in a transaction of their own."""
        if self._to_release or (self._lease_keep is not None and self._lease.id is not None) \
                or self._due():
            with self.ledger.transaction() as txn:
                self._apply_pending(txn)
        self._lease_keep = None

    def _apply_pending(self, txn: Transaction) -> None:
        """Write what was deferred to this transaction: released bookings, cgroups to attach,
        lease slack to give back."""
        self._lease.sync(txn)
        for name in self._due():  # long enough on the lease: a booking of its own
            _, cgroup = self._on_lease.pop(name)
            nbytes = self._lease.given.get(name, 0)
            if not self._lease.take_back(name):
                continue
            self._lease.resize(txn, self._lease.bytes - nbytes)  # the same slack as before
            self._bookings[name] = booking = txn.book(nbytes, name).id
            if cgroup is not None:
                txn.attach(booking, cgroup)
        if self._lease_keep is not None:
            self._lease.resize(txn, min(self._lease.bytes, self._lease.used + self._lease_keep))
            self._lease_keep = None
        if self._to_release:
            txn.release_all(self._to_release)
            self._to_release.clear()
        for booking, cgroup in self._to_attach.items():
            txn.attach(booking, cgroup)
        self._to_attach.clear()

    #: (monotonic time, probe) and (monotonic time, bookings by run) the view last used.
    _seen_probe: tuple[float, Probe] | None = None
    _adopted: Probe | None = None
    _seen_runs: tuple[float, tuple[BookedRun, ...]] | None = None

    def view(self) -> PolicyView:
        """Why stages wait, what this run has booked, memory available now (probed again when
        the last look is a second old), and, while a stage waits, what every run on the
        machine has booked (the ledger, read at most once a second). For progress."""
        now = time.monotonic()
        last = self._last_probe  # a new one from an admission pass is the freshest
        if last is not None and last is not self._adopted:
            self._adopted = last
            self._seen_probe = (now, last)
        elif self._seen_probe is None or now - self._seen_probe[0] > 1.0:
            self._seen_probe = (now, self._probe())
        snap = self._seen_probe[1]
        booked = sum(adm.footprint for adm in self._admitted.values())
        floor = self.config.floor_for(snap.box) if snap.known else None
        capacity = max(0, snap.available - (floor or 0)) if snap.known else None
        by_run: tuple[BookedRun, ...] = ()
        if self._waiting:
            if self._seen_runs is None or now - self._seen_runs[0] > 1.0:
                self._seen_runs = (now, booked_by_run(self.ledger))
            by_run = self._seen_runs[1]
        return PolicyView(waiting=dict(self._why_waiting()), booked=booked,
                          available=snap.available, box=snap.box, capacity=capacity,
                          jobs=self.max_parallel, floor=floor, by_run=by_run)

    def _why_waiting(self) -> dict[str, str]:
        return {name: self._why.get(name, "waiting for memory") for name in self._waiting}

    def duration_hint(self, stage: Stage) -> float | None:
        """Seconds ``stage`` is expected to take: declared, else measured in earlier runs."""
        if stage.expected_seconds is not None:
            return stage.expected_seconds
        entry = self.estimator.store.get(self.estimator.key(stage, self.estimator.requested(stage)))
        return entry.seconds if entry is not None else None

    def size_hint(self, stage: Stage) -> int:
        """The stage's footprint as calibration or its model gives it (cached per run)."""
        size = self._sizes.get(stage.name)
        if size is None:
            snap = self._last_probe or self._fresh_probe()  # only the box matters here
            floor = self.config.floor_for(snap.box)
            size = self.estimator.resolve(stage, self.estimator.requested(stage),
                                          box=snap.box, floor=floor).bytes
            self._sizes[stage.name] = size
        return size

    # -- internals ----------------------------------------------------------------------

    def _due(self) -> list[str]:
        """Stages running on leased memory for :data:`PROMOTE` seconds or more."""
        if not self._on_lease:
            return []
        since = time.monotonic() - PROMOTE
        return [name for name, (t, _) in self._on_lease.items() if t <= since]

    def _fresh_probe(self) -> Probe:
        self._last_probe, self._probed_at = self._probe(), time.monotonic()
        return self._last_probe

    def _from_lease(self, stage: Stage, snap: Probe) -> tuple[Admission, dict[str, Any]] | None:
        """The decision for ``stage`` against the lease's slack, when it can be made there:
        a refusal, or an admission of a small stage that fits. ``None``: ask the ledger."""
        slack = min(self._lease.slack, max(0, snap.available - self.config.floor_for(snap.box)))
        hint = self._sizes.get(stage.name)
        if slack <= 0 or not snap.known or (hint is not None and hint > slack):
            return None
        adm, detail = decide_stage(self.estimator, stage, snap, self._booked, self.config,
                                   lease=slack)
        if adm.decision == REFUSE or (adm.decision == ADMIT and self._small(adm, snap)):
            return adm, detail
        return None

    @staticmethod
    def _small(adm: Admission, snap: Probe) -> bool:
        """Whether an admission may be given memory from the lease."""
        return snap.known and adm.decision == ADMIT and adm.footprint <= snap.box // SMALL_SHARE

    def _pass(self, ready: Sequence[Stage], free: int) -> list[Launch | Refusal]:
        """One admission pass over ``ready`` (in priority order), starting at most ``free``.

        A small stage that fits the lease's slack is admitted from it, with no lock; any
        other takes the ledger's lock, once per pass, and is decided against the machine
        (fresh probe, every run's bookings): a small one grows the lease by what it needs
        and a block more, a big one is booked on its own.

        A stage that must wait does not hold back smaller ones behind it (they fill the
        gap), unless it has waited longer than ``reserve_after`` seconds: then nothing after
        it is admitted until it fits, so a big stage is never starved.
        """
        if free <= 0 or not ready:
            return []
        out: list[Launch | Refusal] = []
        now = time.monotonic()
        snap, fresh = self._last_probe, False
        if snap is None or now - self._probed_at > TURN:
            snap, fresh = self._fresh_probe(), True
        lease = self._lease
        with contextlib.ExitStack() as held:
            txn: Transaction | None = None
            booked = 0  # for decisions under the lock: every booking but the lease's slack
            waited = False
            for stage in ready:
                decided = None if txn is not None and not lease.slack else \
                    self._from_lease(stage, snap)
                if decided is None:
                    if txn is None:
                        txn = held.enter_context(self.ledger.transaction())
                        self._apply_pending(txn)
                        if not fresh:
                            snap = self._fresh_probe()
                        booked = txn.outstanding() - lease.slack
                    others = [b for b in txn.bookings if b.id != lease.id]
                    adm, detail = decide_stage(self.estimator, stage, snap, booked, self.config,
                                               idle=not others and not lease.given)
                    self._booked = booked
                else:
                    adm, detail = decided
                if adm.decision == REFUSE:
                    self._waiting.pop(stage.name, None)
                    out.append(Refusal(stage=stage, reason=adm.reason))
                    continue
                if adm.decision == WAIT:
                    waited = True
                    waiting_since = self._waiting.setdefault(stage.name, now)
                    self._why[stage.name] = adm.reason
                    if now - waiting_since >= self.reserve_after:
                        break
                    continue
                if decided is not None:
                    lease.give(stage.name, adm.footprint)
                    booked += adm.footprint  # no longer slack
                elif txn is not None and self._small(adm, snap):
                    room = Budget(box=snap.box, available=snap.available, booked=booked,
                                  floor=self.config.floor_for(snap.box)).free
                    self._block = lease_block(adm.footprint, snap.box, self.max_parallel)
                    extra = max(0, min(self._block, room - adm.footprint))
                    lease.resize(txn, lease.used + adm.footprint + extra)
                    lease.give(stage.name, adm.footprint)
                    booked += adm.footprint
                elif txn is not None:
                    # room for it may be the lease's slack: give back what it now overlaps
                    room = Budget(box=snap.box, available=snap.available, booked=booked,
                                  floor=self.config.floor_for(snap.box)).free
                    lease.resize(txn, lease.used + max(0, min(lease.slack, room - adm.footprint)))
                    booking = txn.book(adm.footprint, stage.name)
                    booked += adm.footprint
                    self._bookings[stage.name] = booking.id
                free -= 1
                self._admitted[stage.name] = adm
                since = self._waiting.pop(stage.name, None)
                detail["containment"] = self.containment
                out.append(Launch(stage=stage, cap=adm.cap, footprint=adm.footprint,
                                  knobs=dict(adm.knobs), decision=adm.decision,
                                  reason=adm.reason, waited=0.0 if since is None else now - since,
                                  detail=detail))
                if free <= 0:  # slots full: the stages behind are not even looked at
                    break
            if waited and txn is not None:
                lease.resize(txn, lease.used)  # waiting: no slack held back from anyone
        return out
