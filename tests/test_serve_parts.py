"""serve's parts in one process: scheduler, web auth, TLS settings, status page, extensions."""

from __future__ import annotations

import asyncio
import base64
import random
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import bcrypt
import httpx
import pytest
import trustme
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from exporters.result import Check, CheckResult, Kind, Outcome, Phase, Status
from monitor.config import Config
from monitor.config.web import TlsServerConfig, WebConfig
from monitor.results import CheckRecord, ResultsStore
from monitor.server.connections import connection_limits
from monitor.server.extensions import Extension, ExtensionHost, ExtensionSpec, ReloadError
from monitor.server.http import HttpServer, build_app
from monitor.server.page import render_status_page
from monitor.server.registry import build_registry
from monitor.server.reload import ReloadStatus
from monitor.server.scheduler import CheckScheduler
from monitor.server.tls import TlsSetupError, server_context
from monitor.server.webauth import BasicAuth, TooManyAttempts, parse_basic
from tests.servers import LOOPBACK, TlsFiles, free_port


def make_check(name: str, run: object, interval: float = 0.2, timeout: float = 5.0) -> Check:
    return Check(Kind.SMTP, "probe", name, run, interval, timeout)  # type: ignore[arg-type]


def started(store: ResultsStore, checks: list[Check]) -> CheckScheduler:
    store.register(checks)
    scheduler = CheckScheduler(store, start_spread=0.05, rng=random.Random(1))
    scheduler.start(checks)
    return scheduler


def record(store: ResultsStore, target: str) -> CheckRecord:
    return next(r for r in store.snapshot() if r.target == target)


async def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --- scheduler -------------------------------------------------------------------------


async def test_a_raising_check_is_error_and_does_not_stop_the_others() -> None:
    async def boom(phase: Phase) -> Outcome:
        raise RuntimeError("boom")

    async def fine(phase: Phase) -> Outcome:
        return Outcome.ok()

    store = ResultsStore()
    scheduler = started(store, [make_check("boom", boom), make_check("fine", fine)])
    await wait_for(
        lambda: (
            record(store, "boom").runs[Status.ERROR] >= 3
            and record(store, "fine").runs[Status.OK] >= 3
        ),
        5,
    )
    await scheduler.stop(grace=1)
    last = record(store, "boom").last
    assert last is not None and last.reason == "check crashed: RuntimeError: boom"


async def test_a_check_never_runs_twice_at_once() -> None:
    running = 0
    most = 0

    async def slow(phase: Phase) -> Outcome:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.5)
        running -= 1
        return Outcome.ok()

    store = ResultsStore()
    scheduler = started(store, [make_check("slow", slow, interval=0.1)])
    await wait_for(lambda: record(store, "slow").runs[Status.OK] >= 2, 5)
    await scheduler.stop(grace=1)
    assert most == 1


async def test_stop_lets_a_run_in_flight_finish_within_the_grace_period() -> None:
    seen = asyncio.Event()

    async def short(phase: Phase) -> Outcome:
        # Held until the test has seen it in flight: a run of a fixed 0.4 s could end
        # unseen if the loop stalls, and the next is 30 s away.
        await seen.wait()
        await asyncio.sleep(0.4)
        return Outcome.ok()

    store = ResultsStore()
    scheduler = started(store, [make_check("short", short, interval=30)])
    await wait_for(lambda: scheduler.in_flight == 1, 2)
    seen.set()
    assert await scheduler.stop(grace=5) == 0
    assert record(store, "short").runs[Status.OK] == 1


async def test_stop_cancels_what_outlives_the_grace_period() -> None:
    async def endless(phase: Phase) -> Outcome:
        await asyncio.sleep(60)
        return Outcome.ok()

    store = ResultsStore()
    scheduler = started(store, [make_check("endless", endless, interval=30, timeout=60)])
    await wait_for(lambda: scheduler.in_flight == 1, 2)
    begun = time.monotonic()
    assert await scheduler.stop(grace=0.3) == 1
    assert time.monotonic() - begun < 2
    assert record(store, "endless").last is None


async def test_the_first_run_comes_at_its_start_even_when_that_has_passed() -> None:
    """With no spread the first run is due at once, so it has passed by the time the job
    is added (as a small offset can on a busy machine); it must not slip a whole
    interval."""
    ran = asyncio.Event()

    async def first(phase: Phase) -> Outcome:
        ran.set()
        return Outcome.ok()

    store = ResultsStore()
    checks = [make_check("first", first, interval=30)]
    store.register(checks)
    scheduler = CheckScheduler(store, start_spread=0, rng=random.Random(1))
    scheduler.start(checks)
    try:
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        await scheduler.stop(grace=1)
    assert record(store, "first").runs[Status.OK] == 1


async def test_replace_adds_and_removes_checks() -> None:
    async def fine(phase: Phase) -> Outcome:
        return Outcome.ok()

    store = ResultsStore()
    scheduler = started(store, [make_check("old", fine)])
    await wait_for(lambda: record(store, "old").runs[Status.OK] >= 1, 3)
    new = [make_check("new", fine)]
    store.register(new)
    scheduler.replace(new)
    await wait_for(lambda: record(store, "new").runs[Status.OK] >= 2, 3)
    await scheduler.stop(grace=1)
    assert [r.target for r in store.snapshot()] == ["new"]


# --- basic auth ------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ],
)
def test_malformed_authorization_headers_are_refused(header: str | None) -> None:
    assert parse_basic(header) is None


def test_a_colon_in_the_password_is_kept() -> None:
    assert parse_basic(basic("u", "a:b")) == ("u", "a:b")


async def test_basic_auth_accepts_only_the_right_password() -> None:
    auth = BasicAuth({"prom": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()})
    assert await auth.verify(basic("prom", "pw"))
    assert not await auth.verify(basic("prom", "wrong"))
    assert not await auth.verify(basic("other", "pw"))
    assert not await auth.verify(basic("prom", "x" * 100))  # beyond bcrypt's 72 bytes


async def test_a_verified_password_skips_bcrypt_next_time() -> None:
    auth = BasicAuth({"prom": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=12)).decode()})
    begun = time.monotonic()
    assert await auth.verify(basic("prom", "pw"))
    first = time.monotonic() - begun
    begun = time.monotonic()
    for _ in range(20):
        assert await auth.verify(basic("prom", "pw"))
    twenty_more = time.monotonic() - begun
    assert twenty_more < first


async def test_a_replaced_hash_invalidates_the_cached_password() -> None:
    auth = BasicAuth({"prom": bcrypt.hashpw(b"old", bcrypt.gensalt(rounds=4)).decode()})
    assert await auth.verify(basic("prom", "old"))
    auth.replace_users({"prom": bcrypt.hashpw(b"new", bcrypt.gensalt(rounds=4)).decode()})
    assert not await auth.verify(basic("prom", "old"))
    assert await auth.verify(basic("prom", "new"))


async def test_unknown_users_are_checked_at_the_cost_of_the_configured_hashes() -> None:
    # A stand-in check at another cost than the real hashes would let timing tell an
    # unknown user name from a known one.
    auth = BasicAuth({"prom": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=5)).decode()})
    assert not await auth.verify(basic("nobody", "pw"))
    assert auth.stand_in_hash is not None and auth.stand_in_hash.startswith("$2b$05$")
    costs = {"a": 6, "b": 7, "c": 7}
    auth.replace_users(
        {
            user: bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=cost)).decode()
            for user, cost in costs.items()
        }
    )
    assert not await auth.verify(basic("nobody", "pw"))
    assert auth.stand_in_hash is not None and auth.stand_in_hash.startswith("$2b$07$")


async def test_one_password_check_in_flight_per_client_and_shared_by_equal_credentials() -> None:
    auth = BasicAuth({"prom": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()})
    # A scraper's requests at once after a start: one check, all let in.
    assert all(
        await asyncio.gather(*(auth.verify(basic("prom", "pw"), "10.0.0.1") for _ in range(5)))
    )
    # Another guess from an address whose guess is still being checked: refused at once.
    first = asyncio.ensure_future(auth.verify(basic("prom", "guess1"), "10.0.0.2"))
    await asyncio.sleep(0)
    with pytest.raises(TooManyAttempts):
        await auth.verify(basic("nobody", "guess2"), "10.0.0.2")
    assert not await first
    # Another address is checked; once the first check ended, the address may try again.
    assert not await auth.verify(basic("prom", "guess2"), "10.0.0.3")
    assert not await auth.verify(basic("nobody", "guess2"), "10.0.0.2")


# --- TLS settings ----------------------------------------------------------------------


def test_tls_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    files = TlsFiles.create(tmp_path)
    base = {"cert_file": files.cert_file, "key_file": files.key_file}
    bad = [
        ({"client_auth_type": "RequireAnyClientCert"}, "not supported"),
        ({"client_ca_file": files.ca_file}, "NoClientCert"),
        ({"client_auth_type": "RequireAndVerifyClientCert"}, "needs client_ca_file"),
        ({"key_file": files.ca_file}, "cannot load cert_file"),
    ]
    for extra, reason in bad:
        with pytest.raises(TlsSetupError, match=reason):
            server_context(TlsServerConfig.model_validate({**base, **extra}))


async def test_client_certificates_are_required_and_verified(tmp_path: Path) -> None:
    server_files = TlsFiles.create(tmp_path / "server", LOOPBACK)
    client_ca = trustme.CA()
    client_ca_file = tmp_path / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    settings = TlsServerConfig(
        cert_file=server_files.cert_file,
        key_file=server_files.key_file,
        client_ca_file=client_ca_file,
        client_auth_type="RequireAndVerifyClientCert",
    )
    store = ResultsStore()
    registry = CollectorRegistry()
    server = HttpServer(
        build_app(registry, store, BasicAuth({}), lambda: True),
        connection_limits(WebConfig()),
    )
    port = free_port()
    await server.start(LOOPBACK, port, server_context(settings))
    try:
        with_cert = ssl.create_default_context(cafile=str(server_files.ca_file))
        client_ca.issue_cert("scraper.test").configure_cert(with_cert)
        async with httpx.AsyncClient(verify=with_cert, timeout=5) as client:
            response = await client.get(f"https://{LOOPBACK}:{port}/-/healthy")
            assert response.status_code == 200
        without = ssl.create_default_context(cafile=str(server_files.ca_file))
        async with httpx.AsyncClient(verify=without, timeout=5) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"https://{LOOPBACK}:{port}/-/healthy")
    finally:
        await server.stop()


# --- status page -----------------------------------------------------------------------


def test_the_status_page_escapes_what_servers_say() -> None:
    evil = '<script>alert("x")</script> & more'
    result = CheckResult(
        kind=Kind.SMTP,
        check="session",
        target="mx1",
        status=Status.FAIL,
        reason=evil,
        duration_seconds=0.25,
        finished_at=time.time(),
    )
    never = CheckRecord("dns", "records", "example.org", None, dict.fromkeys(Status, 0))
    ran = CheckRecord("smtp", "session", "mx1", result, dict.fromkeys(Status, 1))
    page = render_status_page([ran, never], ready=False)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert '<tr class="fail">' in page and '<tr class="pending">' in page
    assert "not run yet" in page and "starting" in page


# --- extensions ------------------------------------------------------------------------


class Ticker:
    """A real background service: a task that counts ticks until stopped."""

    name = "ticker"

    def __init__(self) -> None:
        self.ticks = 0
        self.stopped = False
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)

    async def start(self) -> None:
        self.stopped = False
        self._task = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.stopped = True


class TickCollector:
    def __init__(self, ticker: Ticker, name: str = "") -> None:
        self._ticker = ticker
        self._name = "test_ticks" + (f"_{name}" if name else "")

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(self._name, "Ticks so far.", value=self._ticker.ticks)


async def test_extensions_start_reload_only_when_their_settings_change_and_stop() -> None:
    built: list[Ticker] = []

    def build(config: Config) -> Extension:
        ticker = Ticker()
        built.append(ticker)
        return Extension(services=[ticker], collectors=[TickCollector(ticker)])

    registry = CollectorRegistry()
    host = ExtensionHost(registry, [ExtensionSpec("ticks", lambda c: c.logs, build)])
    await host.start(Config())
    await asyncio.sleep(0.05)
    assert (registry.get_sample_value("test_ticks") or 0) > 0

    await host.reload(Config.model_validate({"smtp": {"targets": []}}))
    assert len(built) == 1 and not built[0].stopped

    await host.reload(Config.model_validate({"logs": {"domains": ["example.org"]}}))
    assert len(built) == 2 and built[0].stopped and not built[1].stopped

    await host.stop()
    assert built[1].stopped
    assert registry.get_sample_value("test_ticks") is None


class BrokenTicker(Ticker):
    """A service that cannot start, as a log follower whose state_dir is a file."""

    async def start(self) -> None:
        raise OSError("cannot create state_dir /x: Not a directory")


async def test_a_reload_that_cannot_start_everything_keeps_the_old_extensions() -> None:
    built: dict[str, list[Ticker]] = {"first": [], "second": []}

    def builder(name: str) -> Callable[[Config], Extension]:
        def build(config: Config) -> Extension:
            broken = name == "second" and config.logs.domains == ["broken.example"]
            ticker = BrokenTicker() if broken else Ticker()
            built[name].append(ticker)
            return Extension(services=[ticker], collectors=[TickCollector(ticker, name)])

        return build

    registry = CollectorRegistry()
    specs = [ExtensionSpec(name, lambda c: c.logs, builder(name)) for name in built]
    host = ExtensionHost(registry, specs)
    await host.start(Config())
    with pytest.raises(ReloadError, match="extension second cannot start: OSError: cannot"):
        await host.reload(Config.model_validate({"logs": {"domains": ["broken.example"]}}))
    # The new first extension was started, then stopped again; the old ones run again.
    assert len(built["first"]) == 2 and built["first"][1].stopped
    old_first, old_second = built["first"][0], built["second"][0]
    ticks = old_first.ticks, old_second.ticks
    await asyncio.sleep(0.05)
    assert old_first.ticks > ticks[0] and old_second.ticks > ticks[1]
    assert registry.get_sample_value("test_ticks_first") == old_first.ticks
    assert registry.get_sample_value("test_ticks_second") == old_second.ticks
    # The same change is tried again on the next reload; a good one is applied.
    await host.reload(Config.model_validate({"logs": {"domains": ["fine.example"]}}))
    assert len(built["first"]) == 3 and len(built["second"]) == 3
    assert old_first.stopped and old_second.stopped
    assert not built["first"][2].stopped and not built["second"][2].stopped
    await host.stop()


# --- registry --------------------------------------------------------------------------


def test_the_registry_exports_dns_facts() -> None:
    store = ResultsStore()

    async def unused(phase: Phase) -> Outcome:
        return Outcome.ok()

    check = Check(Kind.DNS, "dnssec", "example.org", unused, 60, 5)
    store.register([check])
    store.record(
        CheckResult(
            kind=Kind.DNS,
            check="dnssec",
            target="example.org",
            status=Status.OK,
            reason="",
            duration_seconds=0.1,
            finished_at=time.time(),
            facts={"dnssec_state": "secure"},
        )
    )
    registry = build_registry(store, ReloadStatus())
    value = registry.get_sample_value(
        "mailprobe_dns_dnssec_state",
        {"check": "dnssec", "target": "example.org", "state": "secure"},
    )
    assert value == 1.0
