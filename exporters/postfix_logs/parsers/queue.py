"""A message's life in the queue: cleanup, qmgr, pickup, postsuper, bounce."""

from __future__ import annotations

from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.parsers.delivery import DELIVERY
from exporters.postfix_logs.parsers.rules import QID, Rules, compile_rule, peer
from exporters.postfix_logs.parsers.smtpd import REPLY_TAIL

CLEANUP = Rules(
    {
        "warning:": (
            compile_rule(
                Kind.NOT_ACCEPTED,
                r"(?P<level>warning): " + QID + r": (?P<text>(?:(?P<table>[a-z_]+) )?"
                r"map lookup problem.*)",
            ),
        ),
        "table": (compile_rule(Kind.TABLE_CHANGED, r"table (?P<table>\S+) has changed"),),
    },
    queue_id=(
        compile_rule(Kind.MESSAGE_ID, QID + r": message-id=<?(?P<message_id>.*?)>?$"),
        compile_rule(
            Kind.ACTION,
            QID
            + r": (?P<action>[a-z_-]+): (?P<stage>[A-Z-]+) from "
            + peer("client")
            + ": "
            + REPLY_TAIL,
        ),
        compile_rule(
            Kind.CLEANUP_CHECK,
            QID + r": (?P<action>[a-z_-]+): (?P<check>header|body|mime-header|nested-header)"
            r" (?P<text>.*?) from (?P<client>[^\s;]+); (?P<kv>(?:from|to)=.*?)"
            r"(?:: (?P<detail>.*))?$",
        ),
        compile_rule(Kind.INFO, QID + r": resent-message-id=(?P<message_id>.*)"),
    ),
)

QMGR = Rules(
    {},
    queue_id=(
        compile_rule(
            Kind.QUEUED,
            QID + r": from=<(?P<sender>[^>]*)>+, size=(?P<size>\d+), nrcpt=(?P<nrcpt>\d+)",
        ),
        compile_rule(Kind.REMOVED, QID + r": removed$"),
        DELIVERY,
        compile_rule(
            Kind.EXPIRED,
            QID + r": from=<(?P<sender>[^>]*)>+, status=(?P<status>expired|force-expired),"
            r" returned to sender",
        ),
        compile_rule(Kind.INFO, QID + r": skipped, still being delivered"),
    ),
)

PICKUP = Rules(
    {}, queue_id=(compile_rule(Kind.PICKUP, QID + r": uid=(?P<uid>\d+) from=<(?P<sender>[^>]*)>"),)
)

_SUMMARY = compile_rule(
    Kind.POSTSUPER_SUMMARY,
    r"(?P<action>Deleted|Requeued|Placed on hold|Released from hold|Expired): (?P<count>\d+)"
    r" messages?",
)
POSTSUPER = Rules(
    {head: (_SUMMARY,) for head in ("Deleted:", "Requeued:", "Placed", "Released", "Expired:")},
    queue_id=(
        compile_rule(
            Kind.POSTSUPER,
            QID + r": (?P<action>removed|requeued|placed on hold|released from hold|expired)$",
        ),
    ),
)

BOUNCE = Rules(
    {},
    queue_id=(
        compile_rule(
            Kind.NOTIFICATION,
            QID
            + r": (?P<recipient>sender|postmaster) (?P<notification>non-delivery|delivery status"
            r"|delay|success) notification: (?P<new_qid>[0-9A-Za-z]{5,25})",
        ),
    ),
)
