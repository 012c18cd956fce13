"""Every key of doc/config.md has an effect or is refused (issue 18).

KEY_TESTS maps each main-section key to a test that shows its effect (a
test that only loads a file does not count); REFUSED keys are checked to be
refused with file:line (test_dropin.py); BY_DESIGN keys are the ones that
have no observable effect on Unix in PgBouncer either, or whose meaning
tidepool meets by construction. NOT_YET_SHOWN lists implemented keys whose
effect no test shows yet: it may only shrink. test_every_documented_key_is_
classified fails when a key is added to doc/config.md without a place here.
Below it, small behavioural tests for keys that had none."""
import ctypes
import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import Background, wait_until

HERE = Path(__file__).resolve().parent
DOC = HERE.parent.parent / "doc" / "config.md"

KEY_TESTS = {
    "admin_users": "test_admin.py::test_exporter_queries",
    "application_name_add_host": "test_dropin.py::test_application_name_add_host",
    "auth_dbname": "test_auth_query.py::test_per_database_auth_user",
    "auth_file": "test_admin.py::test_unlisted_user_is_not_allowed",
    "auth_hba_file": "test_tls.py::test_hba_hostssl_hostnossl_and_cert_lines",
    "auth_ident_file": "test_dropin.py::test_hba_map_with_auth_ident_file",
    "auth_query": "test_auth_query.py::test_search_path_of_the_lookup_is_fixed",
    "auth_type": "test_admin.py::test_unlisted_user_is_not_allowed",
    "auth_user": "test_auth_query.py::test_default_query_md5_secret_used_for_server_login",
    "client_idle_timeout": "test_dropin.py::test_user_client_idle_timeout_applies_to_that_user_only",
    "client_login_timeout": "test_faults.py::test_client_login_timeout_closes_stalled_client",
    "client_tls13_ciphers": "test_tls.py::test_protocols_and_ciphers",
    "client_tls_ca_file": "test_tls.py::test_auth_type_cert",
    "client_tls_cert_file": "test_tls.py::test_reload_rereads_certificates_and_a_broken_key_keeps_the_old",
    "client_tls_ciphers": "test_tls.py::test_protocols_and_ciphers",
    "client_tls_key_file": "test_tls.py::test_bad_tls_files_are_refused_at_start_and_by_check",
    "client_tls_protocols": "test_tls.py::test_bad_tls_files_are_refused_at_start_and_by_check",
    "client_tls_sslmode": "test_tls.py::test_disable_answers_N",
    "default_pool_size": "test_admin.py::test_set_default_pool_size_takes_effect",
    "disable_pqexec": "test_dropin.py::test_disable_pqexec",
    "dns_max_ttl": "test_dns.py::test_name_moves_to_another_address_without_failing_a_transaction",
    "dns_nxdomain_ttl": "test_dns.py::test_unresolvable_name_fails_its_clients_only",
    "dns_zone_check_period": "test_dns.py::test_zone_serial_change_triggers_a_new_lookup",
    "idle_transaction_timeout": "test_dropin.py::test_user_idle_transaction_timeout_applies_to_that_user_only",
    "ignore_startup_parameters": "test_prepared.py::test_jdbc_prepare_threshold_1",
    "listen_addr": "test_basic.py::test_psql_over_tcp",
    "listen_backlog": "test_every_key.py::test_listen_backlog",
    "listen_port": "test_basic.py::test_psql_over_tcp",
    "log_connections": "test_faults.py::test_5000_idle_clients_and_a_working_one",
    "log_disconnections": "test_faults.py::test_5000_idle_clients_and_a_working_one",
    "log_pooler_errors": "test_every_key.py::test_log_pooler_errors",
    "log_stats": "test_dropin.py::test_log_stats",
    "logfile": "test_config.py::test_logfile",
    "login_notify_message": "test_dropin.py::test_login_notify_message",
    "max_client_conn": "test_txn_pool.py::test_max_client_conn",
    "max_client_prepared_statements": "test_prepared.py::test_client_statement_limit",
    "max_db_client_connections": "test_dropin.py::test_max_db_client_connections",
    "max_db_connections": "test_dropin.py::test_idle_server_of_another_pool_is_closed_for_a_waiting_client",
    "max_packet_size": "test_faults.py::test_garbage_after_login_08P01",
    "max_prepared_statements": "test_prepared.py::test_more_statements_than_server_cache",
    "max_user_client_connections": "test_dropin.py::test_max_user_client_connections",
    "max_user_connections": "test_dropin.py::test_idle_server_of_another_pool_is_closed_for_a_waiting_client",
    "metrics_listen_addr": "test_http.py::test_livez_readyz_404_405_and_head",
    "metrics_port": "test_http.py::test_livez_readyz_404_405_and_head",
    "min_pool_size": "test_every_key.py::test_min_pool_size",
    "peer_id": "test_peering.py::test_cancel_key_carries_peer_id",
    "pidfile": "test_config.py::test_daemon_mode_with_pidfile",
    "pin_session_state": "test_pinning.py::test_pinning_off_behaves_like_pgbouncer",
    "session_state": "test_session_state.py::test_session_state_error_refuses",
    "pool_mode": "test_txn_pool.py::test_200_concurrent_clients_over_pool_of_5",
    "query_timeout": "test_dropin.py::test_user_query_timeout_applies_to_that_user_only",
    "query_wait_notify": "test_dropin.py::test_query_wait_notify",
    "query_wait_timeout": "test_dropin.py::test_query_wait_timeout_per_user_and_database",
    "readyz_checks_backend": "test_http.py::test_readyz_checks_backend",
    "reserve_pool_size": "test_every_key.py::test_reserve_pool",
    "reserve_pool_timeout": "test_every_key.py::test_reserve_pool",
    "resolv_conf": "test_dns.py::test_resolv_conf_that_cannot_be_read_leaves_ip_addresses_working",
    "scram_iterations": "test_dropin.py::test_scram_iterations",
    "server_check_delay": "test_every_key.py::test_server_check_query_and_delay",
    "server_check_query": "test_every_key.py::test_server_check_query_and_delay",
    "server_idle_timeout": "test_config.py::test_reload_keeps_existing_clients",
    "server_lifetime": "test_prepared.py::test_statement_survives_reconnect_and_recycling",
    "server_login_retry": "test_dns.py::test_refusing_host_is_skipped",
    "server_reset_query": "test_basic.py::test_server_reset_query_custom",
    "server_reset_query_always": "test_every_key.py::test_server_reset_query_always",
    "server_round_robin": "test_dropin.py::test_server_round_robin",
    "server_tls_ca_file": "test_tls.py::test_server_verify_full",
    "server_tls_cert_file": "test_tls.py::test_server_client_certificate",
    "server_tls_key_file": "test_tls.py::test_server_client_certificate",
    "server_tls_sslmode": "test_tls.py::test_server_verify_full",
    "shutdown_delay": "test_http.py::test_sigterm_drain",
    "shutdown_mode": "test_http.py::test_wait_for_clients_mode_keeps_idle_clients",
    "shutdown_timeout": "test_http.py::test_shutdown_timeout_cuts_an_open_transaction",
    "so_reuseport": "test_dropin.py::test_so_reuseport",
    "server_fast_close": "test_admin.py::test_server_fast_close_on_reconnect",
    "stats_period": "test_admin.py::test_stats_averages_over_stats_period",
    "stats_users": "test_admin.py::test_stats_user_may_only_read",
    "stats_users_prefix": "test_operators.py::test_zalando_pooler_shape",
    "suspend_timeout": "test_admin.py::test_suspend_drops_a_client_that_does_not_read",
    "tcp_defer_accept": "test_dropin.py::test_tcp_defer_accept",
    "tcp_keepalive": "test_every_key.py::test_tcp_socket_options",
    "tcp_keepcnt": "test_every_key.py::test_tcp_socket_options",
    "tcp_keepidle": "test_every_key.py::test_tcp_socket_options",
    "tcp_keepintvl": "test_every_key.py::test_tcp_socket_options",
    "tcp_socket_buffer": "test_dropin.py::test_tcp_socket_buffer",
    "tcp_user_timeout": "test_every_key.py::test_tcp_socket_options",
    "transaction_timeout": "test_dropin.py::test_transaction_timeout",
    "unix_socket_dir": "test_basic.py::test_psql_over_unix_socket",
    "unix_socket_group": "test_dropin.py::test_unix_socket_group",
    "unix_socket_mode": "test_every_key.py::test_unix_socket_mode",
    "user": "test_dropin.py::test_user_switches_account",
    "verbose": "test_http.py::test_livez_readyz_404_405_and_head",
    "workers": "test_workers.py::test_workers_share_the_port_and_cancels_reach_their_query",
}

REFUSED = {"auth_ldap_options", "autodb_idle_timeout", "pool_idle_timeout"}

BY_DESIGN = {
    "service_name": "names a Windows service; no effect on Unix, in PgBouncer too",
    "job_name": "alias of service_name",
    "sbuf_loopcnt": "tidepool reads a connection once per loop round, within any bound",
}

# Implemented, but no test shows the effect yet (may only shrink).
NOT_YET_SHOWN = {
    "cancel_wait_timeout", "client_tls_dheparams", "client_tls_ecdhcurve", "conffile",
    "pkt_buf", "server_connect_timeout", "server_tls13_ciphers",
    "server_tls_ciphers", "server_tls_protocols", "syslog", "syslog_facility", "syslog_ident",
    "track_extra_parameters",
}


def documented_keys():
    text = DOC.read_text()
    table = text[text.index("## Main section"):text.index("### auth_type")]
    return re.findall(r"^\| `(\w+)` \|", table, re.M)


def test_every_documented_key_is_classified():
    keys = documented_keys()
    assert len(keys) > 100
    groups = [set(KEY_TESTS), REFUSED, set(BY_DESIGN), NOT_YET_SHOWN]
    for k in keys:
        assert sum(k in g for g in groups) == 1, "%s: in %d groups" % (k, sum(k in g for g in groups))
    assert set().union(*groups) == set(keys), set().union(*groups) ^ set(keys)
    # every referenced test exists
    for key, ref in KEY_TESTS.items():
        fname, func = ref.split("::")
        src = (HERE / fname).read_text()
        assert re.search(r"^def %s\(" % func, src, re.M), "%s: no %s" % (key, ref)
    # the refused ones are checked in test_dropin.py, each of them
    src = (HERE / "test_dropin.py").read_text()
    for k in REFUSED:
        assert '"%s":' % k in src, k
    # the documentation says the same: refused keys are marked so
    text = DOC.read_text()
    for k in REFUSED:
        assert re.search(r"^\| `%s` \|.*\| refused unless default \|" % k, text, re.M), k


# ------------------------------------------------ behavioural checks

SYS_pidfd_getfd = 438


def foreign_socket(pid, fd):
    """A socket object for file descriptor fd of process pid (pidfd_getfd)."""
    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        nfd = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if nfd < 0:
            pytest.skip("pidfd_getfd: %s" % os.strerror(ctypes.get_errno()))
        return socket.socket(fileno=nfd)
    finally:
        os.close(pidfd)


def server_sockets(pid, pg_port):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                continue
        except OSError:
            continue
        s = foreign_socket(pid, int(fd))
        try:
            if s.family == socket.AF_INET and s.getpeername()[1] == pg_port:
                out.append(s)
                continue
        except OSError:
            pass
        s.close()
    return out


def test_tcp_socket_options(tidepool, pg, role):
    tp = tidepool(tcp_keepalive=1, tcp_keepidle=31, tcp_keepintvl=7, tcp_keepcnt=3,
                  tcp_user_timeout=12345)
    with tp.connect(user=role) as c:
        c.execute("select 1")
        socks = server_sockets(tp.pid, pg.port)
        assert socks
        s = socks[0]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 31
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert s.getsockopt(socket.IPPROTO_TCP, 18) == 12345   # TCP_USER_TIMEOUT
        for x in socks:
            x.close()
    off = tidepool(tcp_keepalive=0)
    with off.connect(user=role) as c:
        c.execute("select 1")
        socks = server_sockets(off.pid, pg.port)
        assert socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        for x in socks:
            x.close()


def test_listen_backlog(tidepool):
    tp = tidepool(listen_backlog=77)
    out = subprocess.run(["ss", "-ltnH", "sport", "= :%d" % tp.port], capture_output=True,
                         text=True).stdout
    # for a listening socket ss shows the backlog as Send-Q
    assert re.search(r"LISTEN\s+\d+\s+77\s", out), out


def test_unix_socket_mode(tidepool):
    tp = tidepool(unix_socket_mode="0700")
    st = os.stat(os.path.join(tp.sockdir, ".s.PGSQL.%d" % tp.port))
    assert stat.S_IMODE(st.st_mode) == 0o700


def test_log_pooler_errors(tidepool):
    on, off = tidepool(), tidepool(log_pooler_errors=0)
    for tp in (on, off):
        with pytest.raises(psycopg.OperationalError):
            tp.connect(dbname="no_such_db")
    wait_until(lambda: "pooler error" in on.log(), 5)
    assert "pooler error" not in off.log()


def test_min_pool_size(tidepool, pg, role):
    tp = tidepool(min_pool_size=3)
    with tp.connect(user=role) as c:
        c.execute("select 1")
        wait_until(lambda: len(pg.backends(dbname="appdb", user=role)) == 3, 10)


def test_reserve_pool(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, reserve_pool_size=1,
                  reserve_pool_timeout=0.5)
    holder = tp.connect(user=role)
    holder.execute("begin")
    with tp.connect(user=role) as waiter:
        # served by the reserve server while the holder keeps the only one
        assert Background(waiter.execute, "select 1").exception(10) is None
    assert len(pg.backends(dbname="appdb", user=role)) == 2
    holder.execute("commit")


def test_server_check_query_and_delay(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, server_check_delay=0,
                  server_check_query="select 1/0")
    with tp.connect(user=role) as c:
        c.execute("select 1")
        time.sleep(0.2)
        c.execute("select 1")   # the reused server fails its check: a new one is made
    assert "server check query failed" in tp.log()
    quiet = tidepool(pool_mode="transaction", default_pool_size=1, server_check_delay=30,
                     server_check_query="select 1/0")
    with quiet.connect(user=role) as c:
        c.execute("select 1")
        c.execute("select 1")
    assert "server check query failed" not in quiet.log()


def test_server_reset_query_always(tidepool, role):
    """In transaction mode the reset query runs at every release only with
    server_reset_query_always (a failing one shows that it ran)."""
    def run(tp):
        with tp.connect(user=role) as a:
            a.execute("select 1")
        time.sleep(0.3)
        return "reset query failed" in tp.log()
    assert run(tidepool(pool_mode="transaction", server_reset_query="select 1/0",
                        server_reset_query_always=1))
    assert not run(tidepool(pool_mode="transaction", server_reset_query="select 1/0"))
