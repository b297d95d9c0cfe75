"""The memory-aware scheduling policy the executor asks which ready stages may start.

For each ready stage: resolve its footprint (calibration or model), decide against the live
probe and the machine-wide ledger (refuse, wait, right-size, admit with a cap), and book
what it admits, all under the ledger's lock, so concurrent runs never over-book the box.
When a stage ends its booking is released and calibration learns: a clean peak (what the
stage needed, without page cache), or the cap an OOM kill hit as a lower bound, so a retry
resolves an escalated cap, clamped to what the box can give (an attempt killed at that
clamp is not retried); an OOM bound already there refuses the stage up front, naming it, its
measured lower bound and the box.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from blut_core.broker.admission import ADMIT, REFUSE, WAIT, Admission, Budget, admit
from blut_core.broker.calibration import CalibrationKey
from blut_core.broker.config import BrokerConfig
from blut_core.broker.ledger import Booking, Ledger, Transaction
from blut_core.broker.machine import Probe, probe
from blut_core.broker.resolve import Estimator
from blut_core.host.log import get_logger
from blut_core.model.outcome import Classification, StageOutcome, StageState
from blut_core.model.sizes import format_size
from blut_core.run.scheduling import BookedRun, Launch, PolicyView, Refusal

if TYPE_CHECKING:
    from blut_core.model.stage import Stage
    from blut_core.run.attempt import Attempt
    from blut_core.store.rundir import RunDir

RECHECK = 0.25


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), the default for ``--jobs``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1  # seconds between looks while a stage waits for memory


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
                 config: BrokerConfig, *, idle: bool = False) -> tuple[Admission, dict[str, Any]]:
    """Admission of ``stage`` now, and the facts behind it (the ``stage_admitted`` detail).

    ``idle``: no blut stage on the machine holds a booking, so waiting frees nothing; an
    escalated OOM bound that does not fit is then clamped to what is free (see
    :func:`clamp_to_idle_box`). ``ceiling_bytes`` in the detail is the most the stage could
    be given: an attempt OOM-killed at it is not retried.
    """
    box = snap.box
    floor = config.floor_for(box)
    budget = Budget(box=box, available=snap.available, booked=booked, floor=floor)
    requested = estimator.requested(stage)
    resolved = estimator.resolve(stage, requested, box=box, floor=floor)
    detail: dict[str, Any] = {
        "source": resolved.source, "model_bytes": resolved.model,
        "calibrated_bytes": resolved.calibrated, "box_bytes": box,
        "available_bytes": snap.available, "booked_bytes": booked, "floor_bytes": floor,
        "calibration_key": estimator.key(stage, requested).text,
        "input_bytes": estimator.input_bytes(stage), "ceiling_bytes": budget.ceiling,
    }
    if resolved.exhausted and resolved.bound is not None:
        return Admission(decision=REFUSE, footprint=resolved.bytes, cap=None, drivers=requested,
                         reason=exhausted_reason(stage.name, resolved.bound, box, floor)), detail
    knobs = stage.footprint.knobs if stage.footprint else {}
    adm = admit(stage.name, estimator.need_at(stage, box=box, floor=floor), requested, knobs,
                budget, config.headroom_for)
    if adm.drivers != requested:
        detail["calibration_key"] = estimator.key(stage, adm.drivers).text
    if adm.decision == WAIT and idle and resolved.bound is not None and budget.box > 0:
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
        booking = self._bookings.get(attempt.stage.name)
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
        self._release_pending()
        self.estimator.store.flush()

    def _release_pending(self) -> None:
        """Write the releases no admission pass has written yet, in a transaction of their own."""
        if self._to_release:
            with self.ledger.transaction() as txn:
                self._apply_pending(txn)

    def _apply_pending(self, txn: Transaction) -> None:
        """Write what was deferred to this transaction: released bookings, cgroups to attach."""
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
            snap = self._probe()
            floor = self.config.floor_for(snap.box)
            size = self.estimator.resolve(stage, self.estimator.requested(stage),
                                          box=snap.box, floor=floor).bytes
            self._sizes[stage.name] = size
        return size

    # -- internals ----------------------------------------------------------------------

    def _pass(self, ready: Sequence[Stage], free: int) -> list[Launch | Refusal]:
        """One admission pass over ``ready`` (in priority order), starting at most ``free``.

        A stage that must wait does not hold back smaller ones behind it (they fill the
        gap), unless it has waited longer than ``reserve_after`` seconds: then nothing after
        it is admitted until it fits, so a big stage is never starved.
        """
        if not ready:
            return []
        out: list[Launch | Refusal] = []
        snap = self._probe()
        self._last_probe = snap
        now = time.monotonic()
        with self.ledger.transaction() as txn:
            self._apply_pending(txn)
            booked = txn.outstanding()
            for stage in ready:
                if free <= 0:
                    break
                adm, detail = decide_stage(self.estimator, stage, snap, booked, self.config,
                                           idle=not txn.bookings)
                if adm.decision == REFUSE:
                    self._waiting.pop(stage.name, None)
                    out.append(Refusal(stage=stage, reason=adm.reason))
                    continue
                if adm.decision == WAIT:
                    waiting_since = self._waiting.setdefault(stage.name, now)
                    self._why[stage.name] = adm.reason
                    if now - waiting_since >= self.reserve_after:
                        break
                    continue
                booking = txn.book(adm.footprint, stage.name)
                booked += adm.footprint
                free -= 1
                self._bookings[stage.name] = booking.id
                self._admitted[stage.name] = adm
                since = self._waiting.pop(stage.name, None)
                detail["containment"] = self.containment
                out.append(Launch(stage=stage, cap=adm.cap, footprint=adm.footprint,
                                  knobs=dict(adm.knobs), decision=adm.decision,
                                  reason=adm.reason, waited=0.0 if since is None else now - since,
                                  detail=detail))
        return out
