"""The executor: turns a validated plan into stage attempts, through a launcher.

The executor owns the plumbing — cache checks, attempt directories, the stage context, the
event stream, classification of exits, atomic promotion, retries — and asks a
:class:`SchedulingPolicy` only one question: of the ready stages, which may start now?
A memory-aware policy replaces the bounded one without touching anything else.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from blut_core.errors import BlutError
from blut_core.host.interfaces import Launcher
from blut_core.host.log import get_logger
from blut_core.model.jobs import JobHandle, JobState, JobStatus, PeakSource
from blut_core.model.outcome import Classification, RunInfo, RunSummary, StageOutcome, StageState
from blut_core.model.plan import Plan
from blut_core.model.reprs import record_repr
from blut_core.model.stage import Stage
from blut_core.process.spec import jsonable, prepare_attempt, read_events_from, stage_pythonpath
from blut_core.run.attempt import (
    Attempt,
    classify,
    deadlines,
    failure_text,
    limit_breach,
    memory_failure,
    retry_wait,
)
from blut_core.run.outputs import Outputs
from blut_core.run.progress import ProgressSink, Snapshot, observed, snapshot_of
from blut_core.run.readiness import Readiness
from blut_core.run.scheduling import Launch, Refusal, SchedulingPolicy
from blut_core.store.cache import Cache, CacheEntry
from blut_core.store.rundir import RunDir, StatusLog


@attrs.frozen(kw_only=True)
class ExecOptions:
    """Switches of one run."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    no_cache: bool = False
    fail_fast: bool = False
    deadline: float | None = None  # seconds for the whole run
    jobs: int | None = None        # stages at once (None: the CPUs this process may use)


class _Wakeup(Exception):
    """Raised from a signal handler to end ``launcher.wait`` early."""


class Executor:
    """Runs one plan to the end and returns its :class:`RunSummary`."""

    def __init__(self, *, plan: Plan, run: RunInfo, rundir: RunDir, status: StatusLog,
                 launcher: Launcher, cache: Cache, policy: SchedulingPolicy,
                 hooks: Any, options: ExecOptions | None = None,
                 progress: ProgressSink | None = None,
                 cache_hits: Mapping[str, CacheEntry] | None = None) -> None:
        """``cache_hits``: entries already looked up for this run, by cache key (they are
        not looked up again)."""
        self.plan = plan
        self.run = run
        self.rundir = rundir
        self.status = observed(status, progress)  # progress sees every event as written
        self.launcher = launcher
        self.cache = cache
        self.policy = policy
        self.hooks = hooks
        self.options = options or ExecOptions()
        self.log = get_logger()
        self.order = plan.topological()
        self.outcomes: dict[str, StageOutcome] = {}
        self.outputs = Outputs(cache, rundir, known=cache_hits)
        self.hashes = self.outputs.hashes  # finished stages' logical output hashes
        self.running: dict[str, Attempt] = {}
        self.attempts: dict[str, int] = {}
        self.oom_kills: dict[str, int] = {}  # per stage, this run: retried apart from errors
        self.not_before: dict[str, float] = {}
        self.cache_checked: set[str] = set()
        self.ending: set[str] = set()  # ended, not finished yet (see _wrap_up)
        self.readiness = Readiness(plan, self.order, policy)
        self.cancelled = False
        self.progress = progress
        self._last_tick = 0.0
        self.cancel_requested: str | None = None
        self.waiting = False  # True only while blocked in launcher.wait (safe to interrupt)
        self._pythonpath = stage_pythonpath()
        # the launcher makes a new run's attempt directories and context files, where it runs
        self._deferred = bool(getattr(launcher, "writes_files", False)) and rundir.fresh
        getattr(policy, "bind_run", lambda _: None)(rundir)  # a memory policy sizes stages' inputs

    # -- the loop ---------------------------------------------------------------------

    def seed(self, outcomes: Mapping[str, StageOutcome], attempts: Mapping[str, int],
             oom_kills: Mapping[str, int] | None = None) -> None:
        """Start from a previous driver's results (``blut resume``): finished stages stay;
        attempt numbers and OOM kills go on counting from where they were."""
        for name, outcome in outcomes.items():
            self._set_outcome(name, outcome)
            if outcome.output_hash:
                self.hashes[name] = outcome.output_hash
        self.attempts.update(attempts)
        self.oom_kills.update(oom_kills or {})

    def request_cancel(self, reason: str) -> None:
        """Ask the loop to cancel at its next safe point (signal handlers call this)."""
        self.cancel_requested = reason
        if self.waiting:
            raise _Wakeup

    def execute(self) -> RunSummary:
        start = time.monotonic()
        deadline = start + self.options.deadline if self.options.deadline else None
        try:
            while True:
                if self.cancel_requested:
                    self.cancel(self.cancel_requested)
                    break
                with self.status.batch():  # a turn's events in one write, before any wait
                    self._settle_blocked()
                    started_any = self._start_ready()
                self.outputs.write_stores()  # after the turn's starts: they run meanwhile
                if started_any:
                    self._tick()
                if not self.running:
                    if started_any:
                        continue
                    if self._waiting_for_backoff() or self._policy_waiting():
                        self._tick()  # nothing runs: the display still says what waits, and why
                        self.waiting = True
                        try:
                            time.sleep(max(0.0, min(self._next_timeout(), 1.0)))
                        except _Wakeup:
                            pass
                        finally:
                            self.waiting = False
                        continue
                    self._refuse_stranded()
                    break
                if len(self.order) - len(self.outcomes) - len(self.running) > 1:
                    self.readiness.prioritize()  # ordered while the first stages run
                timeout = self._next_timeout()
                self.waiting = True
                try:
                    self.launcher.wait([a.handle for a in self.running.values()], timeout)
                except _Wakeup:
                    continue
                finally:
                    self.waiting = False
                with self.status.batch():  # written before the next turn launches a dependent
                    self._take_in(time.monotonic())
                if deadline is not None and time.monotonic() > deadline:
                    self.status.append("run_deadline", seconds=self.options.deadline)
                    self.cancel("deadline")
        except KeyboardInterrupt:
            self.cancel(self.cancel_requested or "interrupted")
        finally:
            self.outputs.write_stores()  # every entry is in the cache before the run ends
        self.policy.close()
        outcome = self._run_outcome()
        if self.progress is not None:
            self.progress.close(self.snapshot())
        return RunSummary(run_id=self.run.run_id, recipe=self.run.recipe,
                          run_dir=self.rundir.path, outcome=outcome,
                          wall=time.monotonic() - start,
                          stages=tuple(self.outcomes[s.name] for s in self.order
                                       if s.name in self.outcomes))

    def _take_in(self, now: float) -> None:
        """One query for every running job's state; finish those that ended."""
        ended: list[tuple[Attempt, JobState]] = []
        states = self.launcher.poll_many([a.handle for a in self.running.values()])
        for name in list(self.running):
            attempt = self.running[name]
            state = self._follow(attempt, states.get(attempt.handle.job_id))
            if state is None:
                self._enforce_limits(attempt, now)
            else:
                ended.append((attempt, state))
        self._wrap_up(ended)
        self._tick()

    def _tick(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last_tick >= 0.25:
            self._last_tick = now
            self.progress.update(self.snapshot())

    def snapshot(self) -> Snapshot:
        """Every stage's state now, with what the policy says about memory and waiting."""
        return snapshot_of(self.run.run_id, self.order, self.outcomes, self.running,
                           self.not_before, self.policy.view())

    def cancel(self, reason: str) -> None:
        """Kill every running attempt and mark every unfinished stage cancelled."""
        self.cancelled = True
        for name, attempt in list(self.running.items()):
            self.launcher.cancel(attempt.handle)
            attempt.forced = Classification.CANCELLED
            attempt.error = reason
            state = self.launcher.poll(attempt.handle)
            self._finish(attempt, state)
            self.running.pop(name, None)
        for s in self.order:
            if s.name not in self.outcomes:
                self._record(s, StageOutcome(stage=s.name, attempt=self.attempts.get(s.name, 0),
                                             state=StageState.CANCELLED,
                                             classification=Classification.CANCELLED,
                                             error=reason))

    def _run_outcome(self) -> str:
        if self.cancelled:
            return "cancelled"
        states = {o.state for o in self.outcomes.values()}
        if states & {StageState.FAILED, StageState.CANCELLED}:
            return "failed"
        if StageState.REFUSED in states:
            return "refused"
        return "failed" if StageState.UPSTREAM_FAILED in states else "ok"

    def _refuse_stranded(self) -> None:
        """Ready stages a policy neither started nor refused, with nothing left to wait for."""
        for s in self._ready():
            self._record(s, StageOutcome(
                stage=s.name, attempt=self.attempts.get(s.name, 0), state=StageState.REFUSED,
                classification=Classification.ERROR,
                error="never admitted: nothing was running and the scheduler would not start it"))

    def _policy_waiting(self) -> bool:
        """Ready stages the policy holds back (e.g. waiting for memory another run holds)."""
        return bool(self._ready()) and self.policy.next_check() is not None

    def _waiting_for_backoff(self) -> bool:
        return any(n not in self.outcomes and n not in self.running for n in self.not_before)

    def _next_timeout(self) -> float:
        """Sleep until the next thing that can happen without a process exiting."""
        now = time.monotonic()
        wakes = [1.0]
        policy_wake = self.policy.next_check()
        if policy_wake is not None:
            wakes.append(policy_wake)
        for attempt in self.running.values():
            wakes += [d - now for d in deadlines(attempt)]
            wakes.append(0.2)  # metrics and heartbeats are read from files
        if self.not_before:
            wakes.append(min(self.not_before.values()) - time.time())
        return max(0.0, min(wakes))

    def _enforce_limits(self, attempt: Attempt, now: float) -> None:
        """Soft and hard timeouts and the heartbeat watchdog of one running attempt."""
        breach = limit_breach(attempt, now)
        if breach is None:
            return
        if breach.kill is None:  # the soft timeout: SIGTERM, then the grace period
            attempt.term_sent = now
            t = attempt.stage.timeouts
            self.status.append("stage_soft_timeout", stage=attempt.stage.name,
                               attempt=attempt.number, after=t.soft, grace=t.grace)
            self.launcher.signal(attempt.handle, signal.SIGTERM)
        else:
            self._kill(attempt, breach.kill, breach.message)

    # -- readiness ----------------------------------------------------------------------

    def _set_outcome(self, name: str, outcome: StageOutcome) -> None:
        previous = self.outcomes.get(name)
        self.outcomes[name] = outcome
        self.readiness.settled(name, outcome.ok and not (previous is not None and previous.ok),
                               failed=not outcome.ok)

    def _settle_blocked(self) -> None:
        """Record the stages a failed or pruned input blocks (runs only after such an outcome)."""
        for outcome in self.readiness.blocked(self.outcomes, self.running):
            self._record(self.plan.by_name[outcome.stage], outcome)

    def _ready(self) -> Sequence[Stage]:
        return self.readiness.ready(self.outcomes, self.running, self.ending, self.not_before)

    def _start_ready(self) -> bool:
        if self.cancelled or (self.options.fail_fast and self._run_outcome() == "failed"):
            if self.options.fail_fast and not self.cancelled and self._run_outcome() == "failed":
                self.cancel("fail-fast: another stage failed")
            return False
        progressed = False
        # cache hits never need a slot (each stage is looked up once a run, when it is ready)
        hits = [s for s in self.readiness.joined(self.outcomes) if self._try_cached(s)]
        if hits:
            return True
        ready = self._ready()  # read by the policy only as far as it looks
        for decision in self.policy.choose(ready, list(self.running.values())):
            if isinstance(decision, Refusal):
                self.status.append("stage_refused", stage=decision.stage.name,
                                   reason=decision.reason)
                self._record(decision.stage, StageOutcome(
                    stage=decision.stage.name, attempt=self.attempts.get(decision.stage.name, 0),
                    state=StageState.REFUSED, classification=Classification.ERROR,
                    error=decision.reason))
            else:
                self._launch(decision)
            progressed = True
        return progressed

    # -- cache ------------------------------------------------------------------------

    def _try_cached(self, s: Stage) -> bool:
        """Skip ``s`` if its result is cached. Each stage is looked up once per run."""
        if s.name in self.cache_checked:
            return False
        self.cache_checked.add(s.name)
        if self.options.no_cache or not s.cache or s.name in self.attempts:
            return False
        outcome = self.outputs.cached(s)
        if outcome is None:
            return False
        self.status.append("stage_skipped", stage=s.name, cache_key=outcome.cache_key,
                           output_hash=outcome.output_hash)
        self._record(s, outcome, log_event=False)
        return True

    # -- launching -----------------------------------------------------------------------

    def _launch(self, decision: Launch) -> Attempt:
        s, cap, knobs = decision.stage, decision.cap, decision.knobs
        number = self.attempts.get(s.name, 0) + 1
        self.attempts[s.name] = number
        key = self.outputs.key(s)
        job = prepare_attempt(self.rundir, self.run.run_id, s, number, cap=cap,
                              knobs=knobs or {}, pythonpath=self._pythonpath,
                              deferred=self._deferred)
        job = attrs.evolve(job, time_limit=s.timeouts.hard, run_tag=self.run.run_id)  # for a cluster
        adir = self.rundir.attempt_dir(s.name, number)
        tmp_out = adir / "out.tmp"
        self.status.append("stage_admitted", stage=s.name, attempt=number,
                           decision=decision.decision, footprint_bytes=decision.footprint,
                           cap_bytes=cap, knobs=dict(knobs), waited=round(decision.waited, 6),
                           reason=decision.reason, **dict(decision.detail))
        try:
            handle = self.launcher.submit(job)
        except BlutError as exc:  # e.g. the command does not exist: this stage fails, not the run
            attempt = Attempt(stage=s, number=number, dir=adir, tmp_out=tmp_out, key=key,
                              handle=JobHandle(launcher=self.launcher.name, job_id=""),
                              started=time.monotonic(), cap=cap, footprint=decision.footprint,
                              forced=Classification.DETERMINISTIC, error=exc.message,
                              files=job.files)
            self._finish(attempt, JobState(status=JobStatus.EXITED, detail=exc.message))
            return attempt
        attempt = Attempt(stage=s, number=number, handle=handle, dir=adir, tmp_out=tmp_out,
                          key=key, started=time.monotonic(), cap=cap,
                          footprint=decision.footprint, admission=decision.detail,
                          files=job.files)
        self.running[s.name] = attempt
        self.policy.started(attempt)
        self.status.append("stage_started", stage=s.name, attempt=number, cache_key=key,
                           job_id=handle.job_id, pid=handle.pid, cap_bytes=cap,
                           launcher=handle.launcher, cgroup=handle.cgroup)
        self.hooks.stage_started(self.run, s, number)
        return attempt

    # -- following ---------------------------------------------------------------------

    def _follow(self, attempt: Attempt, state: JobState | None = None) -> JobState | None:
        """Take in the attempt's reports; its final state once its process has ended (read
        after it ended: every report is in by then, so an ended one is read once)."""
        if state is None or not state.done:
            self._drain_events(attempt)
            state = state or self.launcher.poll(attempt.handle)
            if not state.done:
                attempt.observe(state, time.monotonic())
                return None
        self._drain_events(attempt)
        self.running.pop(attempt.stage.name, None)
        return state

    def _wrap_up(self, ended: list[tuple[Attempt, JobState]]) -> None:
        """Finish attempts whose processes ended.

        When every one of them exited cleanly, the slots they freed are refilled first, so
        that their bookkeeping (promotion, hashing, events, calibration) overlaps the stages
        started in their place. Their own dependents wait for the next pass, as they must;
        a failure is always finished first (retries, ``--fail-fast``).
        """
        if not ended:
            return
        if all(a.forced is None and a.term_sent is None and s.returncode == 0
               and not s.oom_killed for a, s in ended):
            self.ending = {a.stage.name for a, _ in ended}
            try:
                self._start_ready()
            finally:
                self.ending = set()
        for attempt, state in ended:
            self._finish(attempt, state)

    def _drain_events(self, attempt: Attempt) -> None:
        events, attempt.events_offset = read_events_from(attempt.dir / "events.jsonl",
                                                         attempt.events_offset)
        for ev in events:
            self._on_event(attempt, ev)

    def _on_event(self, attempt: Attempt, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        s = attempt.stage
        if kind == "metric":
            raw = ev.get("values")
            values: dict[str, Any] = raw if isinstance(raw, dict) else {}
            self.status.append("stage_metric", stage=s.name, attempt=attempt.number,
                               step=ev.get("step"), values=jsonable(values))
            metrics = dict(values or {})
            if ev.get("step") is not None:
                metrics.setdefault("step", ev.get("step"))
            if attempt.forced is None and self.hooks.stage_metrics(
                    self.run, s, attempt.number, metrics) == "prune":
                self._kill(attempt, Classification.PRUNED,
                           f"pruned on metrics {jsonable(values)}")
        elif kind == "heartbeat":
            attempt.last_beat = time.monotonic()
            self.status.append("stage_heartbeat", stage=s.name, attempt=attempt.number)
        elif kind == "checkpoint":
            self.status.append("stage_checkpoint", stage=s.name, attempt=attempt.number)
        elif kind == "error":
            attempt.error = str(ev.get("message", ""))[:2000]
            attempt.error_kind = str(ev.get("kind", "error"))

    def _kill(self, attempt: Attempt, why: Classification, message: str) -> None:
        attempt.forced = why
        attempt.error = message
        self.status.append("stage_killed", stage=attempt.stage.name, attempt=attempt.number,
                           classification=why.value, reason=message)
        self.launcher.cancel(attempt.handle)

    # -- finishing ---------------------------------------------------------------------

    def _finish(self, attempt: Attempt, state: JobState) -> None:
        s = attempt.stage
        duration = time.monotonic() - attempt.started
        cls = classify(attempt, state)
        output_hash = None
        error = attempt.error
        if cls is Classification.OK:
            try:
                output_hash = self.outputs.promote(s, attempt.tmp_out, attempt.key, attempt.dir)
            except OSError as exc:
                cls, error = Classification.ERROR, f"could not promote outputs: {exc}"
        else:
            attempt.write_missing_files()  # a full disk stops the run here (DiskFull)
            if error is None:
                error = failure_text(attempt, state)
        stage_state = {Classification.OK: StageState.OK, Classification.PRUNED: StageState.PRUNED,
                       Classification.CANCELLED: StageState.CANCELLED}.get(cls, StageState.FAILED)
        outcome = StageOutcome(stage=s.name, attempt=attempt.number, state=stage_state,
                               classification=cls, returncode=state.returncode,
                               duration=duration, peak_bytes=state.peak_bytes,
                               cap_bytes=attempt.cap, output_hash=output_hash,
                               cache_key=attempt.key, error=error)
        ooms = self.oom_kills[s.name] = self.oom_kills.get(s.name, 0) + (cls is Classification.OOM)
        # The policy learns first and frees the booking on its next pass, after the event
        # below: a [stage_admitted, stage_finished] span always covers the booking. Only a
        # kernel peak calibrates; a sampled one (a scheduler's accounting) is shown, not learnt.
        kernel = state.peak_source is PeakSource.KERNEL
        self.policy.finished(attempt, outcome if kernel else attrs.evolve(outcome, peak_bytes=None))
        wait = None if self.cancelled or stage_state is not StageState.FAILED \
            else retry_wait(attempt, cls, ooms)
        if wait is None and cls is Classification.OOM and not self.cancelled:
            outcome = attrs.evolve(outcome, error=memory_failure(attempt, state, ooms))
        self.status.append("stage_finished", **outcome.to_event(), node=state.node or None,
                           peak_source=state.peak_source.value if state.peak_bytes else None)
        if wait is not None:
            self.status.append("stage_retrying", stage=s.name, attempt=attempt.number + 1,
                               max_attempts=s.retry.max_attempts, oom_retries=s.retry.oom_retries,
                               after=wait, classification=cls.value, error=error)
            self.hooks.stage_finished(self.run, s, outcome)
            self.not_before[s.name] = time.time() + wait
            return
        self._record(s, outcome, log_event=False)

    def _record(self, s: Stage, outcome: StageOutcome, *, log_event: bool = True) -> None:
        self._set_outcome(s.name, outcome)
        self.not_before.pop(s.name, None)
        if log_event:
            self.status.append("stage_finished", **outcome.to_event())
        self.hooks.stage_finished(self.run, s, outcome)
        level = "info" if outcome.ok or outcome.state is StageState.PRUNED else "warning"
        getattr(self.log, level)("stage_" + outcome.state.value, stage=s.name,
                                 attempt=outcome.attempt, seconds=round(outcome.duration, 3),
                                 error=outcome.error)
