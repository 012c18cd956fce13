"""The fixed memory cost of a tidepool process (issue 23: a sidecar runs once
per application pod, so its fresh-process RSS multiplies).

A fresh process used to hold 10 MiB: libpq's dependency chain (Kerberos,
LDAP, SASL, GnuTLS, p11-kit: ~3 MiB), a server-side TLS context built at
start for server_tls_sslmode = prefer (OpenSSL's providers and tables,
~2.6 MiB) and OpenSSL's random generator on the first login. These tests
pin each of those down. RSS figures are skipped under ASan, whose shadow
memory and quarantine make them meaningless."""
import pytest

from test_auth_query import _under_asan


def _maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def test_pooler_does_not_load_libpq(tidepool):
    """libpq only told us its keyword list; its dependencies cost 3 MiB."""
    tp = tidepool()
    maps = _maps(tp.pid)
    for lib in ("libpq.so", "libgnutls", "libkrb5", "libldap"):
        assert lib not in maps, lib + " is mapped in a fresh tidepool"


def test_fresh_process_rss_is_small(tidepool):
    """server_tls_sslmode = prefer (the default) and no TLS toward clients:
    no TLS context exists until a server accepts TLS. PgBouncer 1.25 starts
    at about 4.6 MiB here, tidepool now at about 4.3 MiB; before, 10 MiB."""
    tp = tidepool()
    if _under_asan(tp.pid):
        pytest.skip("RSS is not meaningful under ASan")
    rss = _rss_kb(tp.pid)
    assert rss < 6 * 1024, "a fresh tidepool holds %d kB" % rss


def test_logins_do_not_start_openssl(tidepool):
    """Cancel keys come from getrandom(2): OpenSSL's generator took 2.2 MiB
    at the first login. Trust logins to a server without TLS (the test
    PostgreSQL) leave OpenSSL unloaded, so 50 clients add only their own
    small cost to a fresh process."""
    tp = tidepool(pool_mode="transaction")
    if _under_asan(tp.pid):
        pytest.skip("RSS is not meaningful under ASan")
    before = _rss_kb(tp.pid)
    conns = [tp.connect() for _ in range(50)]
    try:
        for c in conns:
            c.execute("select 1")
        grown = _rss_kb(tp.pid) - before
        server_ssl = conns[0].execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]
    finally:
        for c in conns:
            c.close()
    if server_ssl:
        pytest.skip("the test PostgreSQL accepts TLS: the context is needed")
    assert grown < 1024, "50 logins grew RSS by %d kB" % grown
