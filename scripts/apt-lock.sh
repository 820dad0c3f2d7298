# Sourced by setup.sh: run a package-manager command, waiting while another one holds
# its lock instead of failing at once ("Could not get lock").
#
# apt-get install waits for the dpkg lock by itself when given DPkg::Lock::Timeout, but
# apt-get update takes the package-lists lock and debconf its database lock without
# waiting (apt 2.6): those are retried here, every 2 s, for at most 10 minutes.

APT_LOCK_WAIT=600
APT=(apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_WAIT")

retry_while_locked() {
    local deadline=$((SECONDS + APT_LOCK_WAIT)) err said=""
    exec 3>&1
    while true; do
        # stdout goes straight through; stderr is kept to see why it failed.
        if err=$("$@" 2>&1 1>&3 3>&-); then
            [[ -z "$err" ]] || printf '%s\n' "$err" >&2
            exec 3>&-
            return 0
        fi
        case "$err" in
            *"Could not get lock"* | *"is locked by another process"* | *"Unable to lock"*) ;;
            *) printf '%s\n' "$err" >&2; exec 3>&-; return 1 ;;
        esac
        if ((SECONDS >= deadline)); then
            printf '%s\n' "$err" >&2
            echo "setup: gave up after ${APT_LOCK_WAIT}s waiting for that lock" >&2
            exec 3>&-
            return 1
        fi
        [[ -n "$said" ]] || echo "setup: another package manager holds its lock; waiting (up to ${APT_LOCK_WAIT}s)" >&2
        said=1
        sleep 2
    done
}
