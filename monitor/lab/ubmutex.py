"""A lock around libunbound's ub_ctx_config() for the lab's opendkim, loaded by LD_PRELOAD.

Debian 12's opendkim (2.11.0~beta2) sets up a fresh VBR resolver for every message and
hands it the ``ResolverConfiguration`` file; libunbound parses that file with a flex
scanner whose state is global, so two messages at once in one opendkim corrupt it: the
message is tempfailed ("can't set VBR resolver configuration") or opendkim exits with
"fatal flex scanner internal error". The lab cannot drop the file: its zones are under
``.test``, which libunbound otherwise answers itself, and libunbound refuses 127/8
upstreams unless told otherwise; opendkim's other resolver options (``Nameservers``,
``TrustAnchorFile``) set neither. The VBR setup has no switch, and a failure there also
tempfails the message.

Upstream opendkim later serialized the call with a mutex; this library does the same from
outside: it defines ub_ctx_config(), takes a process-wide lock and calls libunbound's
own. It is compiled with ``cc`` (Debian ``gcc``) into the lab's folder, once: the source
next to it is the cache key.
"""

from __future__ import annotations

from pathlib import Path

from monitor.lab import procs

SOURCE = r"""/* mailprobe lab: serialize libunbound's ub_ctx_config(); see monitor/lab/ubmutex.py */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

struct ub_ctx;
typedef int (*ub_ctx_config_fn)(struct ub_ctx *, const char *);
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int ub_ctx_config(struct ub_ctx *ctx, const char *fname)
{
	static ub_ctx_config_fn real;
	int status = -1; /* an error, should libunbound's own be missing */

	pthread_mutex_lock(&lock);
	if (real == NULL)
		real = (ub_ctx_config_fn) dlsym(RTLD_NEXT, "ub_ctx_config");
	if (real != NULL)
		status = real(ctx, fname);
	pthread_mutex_unlock(&lock);
	return status;
}
"""
COMPILE_TIMEOUT = 60.0


def ensure_library(library: Path) -> Path:
    """Compile the library to ``library`` unless it is there and built from this source."""
    source = library.with_suffix(".c")
    try:
        current = library.exists() and source.read_text() == SOURCE
    except OSError:
        current = False
    if current:
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    # Built under other names and renamed: an interrupted build leaves no stale pair.
    partial_source = source.with_name(source.name + ".partial.c")
    partial = library.with_name(library.name + ".partial")
    partial_source.write_text(SOURCE)
    procs.run(
        [
            "cc",
            "-shared",
            "-fPIC",
            "-O2",
            "-o",
            str(partial),
            str(partial_source),
            "-ldl",
            "-lpthread",
        ],
        timeout=COMPILE_TIMEOUT,
    )
    partial.chmod(0o644)
    partial.replace(library)
    partial_source.replace(source)
    return library
