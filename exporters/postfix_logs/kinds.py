"""What a parsed line is: one value per line shape the parsers recognise.

A parser answers ``(Kind, match)``; the aggregator picks its handler by kind and reads
only the match groups it needs, so a line that feeds no metric costs one regex match.
"""

from __future__ import annotations

import enum


class Kind(enum.IntEnum):
    # any daemon
    LOG = enum.auto()  # warning/error/fatal/panic line no specific rule claimed
    INFO = enum.auto()  # understood, feeds no metric (statistics, cache cleanup, ...)
    TABLE_CHANGED = enum.auto()
    # smtpd
    CONNECT = enum.auto()
    DISCONNECT = enum.auto()
    CLIENT = enum.auto()
    ACTION = enum.auto()  # NOQUEUE/QID: reject|reject_warning|discard|hold|filter|milter-*: STAGE
    PROXY = enum.auto()  # proxy-accept / proxy-reject (before-queue content filter)
    SESSION_END = enum.auto()  # lost connection / timeout / too many errors after STAGE
    PROTOCOL_ERROR = enum.auto()  # improper pipelining, bare <LF>, SSL_accept, non-SMTP command
    FCRDNS = enum.auto()
    SASL_FAILURE = enum.auto()
    SASL_BACKEND = enum.auto()
    TLS = enum.auto()
    # postscreen
    PS_CONNECT = enum.auto()
    PS_PASS = enum.auto()
    PS_LISTED = enum.auto()
    PS_DNSBL = enum.auto()
    PS_VIOLATION = enum.auto()
    PS_DISCONNECT = enum.auto()
    PS_REJECT = enum.auto()
    PS_BUSY = enum.auto()
    DNSBL_LISTED = enum.auto()
    TLS_HANDSHAKE_FAILED = enum.auto()
    # queue life
    MESSAGE_ID = enum.auto()
    CLEANUP_CHECK = enum.auto()  # header/body checks and milter-header-* actions
    NOT_ACCEPTED = enum.auto()  # "map lookup problem ... -- message not accepted"
    QUEUED = enum.auto()  # qmgr from=, size=, nrcpt=
    REMOVED = enum.auto()
    EXPIRED = enum.auto()
    PICKUP = enum.auto()
    POSTSUPER = enum.auto()
    POSTSUPER_SUMMARY = enum.auto()
    NOTIFICATION = enum.auto()  # bounce: sender non-delivery notification: QID
    # delivery agents
    DELIVERY = enum.auto()  # to=, relay=, delay=, delays=, dsn=, status=
    CONNECT_FAILED = enum.auto()  # connect to HOST[IP]:PORT: reason
    REMOTE_REPLY = enum.auto()  # host X said: ... (in reply to ...)
    CONVERSATION_LOST = enum.auto()  # lost connection with / conversation timed out while
    TLS_FAILED = enum.auto()  # certificate verification failed, SSL_connect error, ...
    CLIENT_SASL_FAILED = enum.auto()
    # master / postfix-script
    LIFECYCLE = enum.auto()
    # programs sharing mail.log
    FOREIGN = enum.auto()
    SRS = enum.auto()
    DKIM_SIGNED = enum.auto()
    RSPAMD = enum.auto()
    VIRUS = enum.auto()
    SPAMD = enum.auto()
