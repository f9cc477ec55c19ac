"""H11: the queue-triggered worker of the fan-out (S9). Thin: ``dispatch.process_message``.

The trigger's ``connection`` names the app setting holding the connection string: INVOICING_STORAGE,
the tables' own (S2; queue mode requires it, see ``Settings.from_env``), so the host listens where
the daily run enqueues. The host decodes the base64 text the dispatcher sends (host.json
``messageEncoding``). A failure raises: the host makes the message visible again after host.json's
``visibilityTimeout`` and, after ``maxDequeueCount`` deliveries, moves it to
``<INVOICE_QUEUE>-poison``; ``process_message`` has then recorded the contract as poisoned.
"""

from __future__ import annotations

import logging

import azure.functions as func

from invoicing import services
from invoicing.settings import STORAGE_SETTINGS, Settings

bp = func.Blueprint()
log = logging.getLogger("invoicing.queue")


@bp.function_name("invoice_contracts")
@bp.queue_trigger(arg_name="msg", queue_name="%INVOICE_QUEUE%", connection=STORAGE_SETTINGS[0])
def invoice_contracts(msg: func.QueueMessage) -> None:
    config = Settings.from_env()
    store = services.open_store(config)
    done = services.process_message(store, config, msg.get_body(), msg.dequeue_count or 1)
    log.info(
        "contract %s invoiced over %d date(s): %d invoice(s)%s",
        done.contract,
        len(done.dates),
        done.invoices,
        "; its batch is done and the ledger written" if done.ledger_written else "",
    )
