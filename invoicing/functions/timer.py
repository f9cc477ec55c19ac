"""H1: the daily run on a timer (R17-R19). Same code path as ``POST /api/runs`` and ``run``."""

from __future__ import annotations

import logging

import azure.functions as func

from invoicing import services
from invoicing.settings import Settings
from invoicing.views import to_jsonable

bp = func.Blueprint()
log = logging.getLogger("invoicing.timer")


@bp.function_name("daily_invoice_run")
@bp.timer_trigger(
    schedule="%INVOICE_RUN_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True
)
def daily_invoice_run(timer: func.TimerRequest) -> None:
    config = Settings.from_env()
    today = services.today_in(config)
    if timer.past_due:
        log.warning("daily run for %s is past due; catching up missed dates first", today)
    try:
        summary = services.run_daily(services.open_store(config), config, today=today)
    except services.LeaseHeld as exc:
        # Another run (timer replay, admin call, CLI) is working: it will do the work.
        log.info("daily run for %s skipped: %s", today, exc)
        return
    log.info("daily run for %s done: %s", today, to_jsonable(summary.as_dict()))
