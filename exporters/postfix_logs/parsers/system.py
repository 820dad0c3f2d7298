"""master, postfix-script and the statistics/cache daemons (anvil, scache, verify)."""

from __future__ import annotations

from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.parsers.rules import Rules, compile_rule
from exporters.postfix_logs.parsers.screening import CACHE_CLEANUP

_VERSION = r" -- version (?P<version>\S+), configuration (?P<config>\S+)"

MASTER = Rules(
    {
        "daemon": (compile_rule(Kind.LIFECYCLE, r"(?P<event>daemon started)" + _VERSION),),
        "reload": (compile_rule(Kind.LIFECYCLE, r"(?P<event>reload)" + _VERSION),),
        "terminating": (
            compile_rule(Kind.LIFECYCLE, r"(?P<event>terminating) on signal (?P<signal>\d+)"),
        ),
        "warning:": (
            compile_rule(
                Kind.LIFECYCLE,
                r"(?P<level>warning): process (?P<path>\S+) pid (?P<pid>\d+)"
                r" (?P<event>exit status|killed by signal) (?P<status>\d+)",
            ),
            compile_rule(
                Kind.LIFECYCLE,
                r"(?P<level>warning): (?P<path>\S+): (?P<event>bad command startup) -- throttling",
            ),
            compile_rule(
                Kind.LIFECYCLE,
                r"(?P<level>warning): service \"(?P<service>[^\"]*)\" \([^)]*\)"
                r" has (?P<event>reached its process limit)",
            ),
        ),
    }
)

_SCRIPT = compile_rule(
    Kind.LIFECYCLE, r"(?P<event>starting|stopping|refreshing|waiting for) the Postfix mail system"
)
POSTFIX_SCRIPT = Rules(
    {head: (_SCRIPT,) for head in ("starting", "stopping", "refreshing", "waiting")}
)

_COMPATIBILITY = compile_rule(
    Kind.INFO,
    r"(?:Postfix is (?:running with|using) backwards-compatible default settings"
    r"|See http\S+/COMPATIBILITY_README\.html for details"
    r"|To disable backwards compatibility use .*)$",
)
POSTFIX_COMMAND = Rules({head: (_COMPATIBILITY,) for head in ("Postfix", "See", "To")})
"""The ``postfix`` command itself: Postfix 3's compatibility_level notice (three lines
at every start or reload while compatibility_level is below the running version's)."""

ANVIL = Rules(
    {
        "statistics:": (
            compile_rule(
                Kind.INFO,
                r"statistics: max (?:connection rate (?P<conn_rate>\d+)/(?P<conn_period>\d+[smhd])"
                r"|connection count (?P<conn_count>\d+)|cache size (?P<cache_size>\d+)"
                r"|(?P<stat>[a-z]+ rate) (?P<rate>\d+)/(?P<period>\d+[smhd]))"
                r"(?: for \((?P<service>[A-Za-z][\w-]*|[\d.]+:\d+|\[[^\]]*\]:\d+)"
                r":(?P<client_ip>[^)]+)\))? at (?P<timestamp>.*)",
            ),
        ),
    }
)

SCACHE = Rules(
    {
        "statistics:": (
            compile_rule(
                Kind.INFO,
                r"statistics: (?:start interval (?P<timestamp>.*)"
                r"|(?P<lookup>domain|address) lookup hits=(?P<hits>\d+) miss=(?P<miss>\d+)"
                r" success=(?P<success>\d+)%"
                r"|max simultaneous domains=(?P<domains>\d+) addresses=(?P<addresses>\d+)"
                r" connection=(?P<connection>\d+))",
            ),
        ),
    }
)

VERIFY = Rules({"cache": (CACHE_CLEANUP,)})
