"""Schedules: recipes run on a calendar by systemd timers or cron.

Three entry points: ``cli-schedule`` (:mod:`.commands`, the ``blut schedule`` group),
``schedule-systemd`` (:mod:`.systemd`) and ``schedule-cron`` (:mod:`.cron`), the backends,
registered through ``blut_schedulers``. :mod:`.model` holds what they share, :mod:`.fire`
what a firing does.
"""
