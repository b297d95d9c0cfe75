"""The resource broker: never let a run take the machine out of memory.

- :mod:`~blut_core.broker.probe`: the box now (RAM, MemAvailable, blut's cgroup limit);
- :mod:`~blut_core.broker.sizes`: ``"512M"``-style sizes;
- :mod:`~blut_core.broker.config`: floor, headroom, escalation (scale with the box);
- :mod:`~blut_core.broker.admission`: refuse / wait / right-size / admit, pure;
- :mod:`~blut_core.broker.calibration`: measured peaks and OOM bounds per key;
- :mod:`~blut_core.broker.ledger`: bookings shared by every blut process on the machine;
- :mod:`~blut_core.broker.cgroupcage`: a stage's own cgroup (v1/v2 backends use it);
- :mod:`~blut_core.broker.select`: which containment backend;
- :mod:`~blut_core.broker.resolve`, :mod:`~blut_core.broker.policy`,
  :mod:`~blut_core.broker.service`: footprints, the run's scheduling policy, the facade.

Import names from :mod:`blut_core`; submodules load lazily.
"""
