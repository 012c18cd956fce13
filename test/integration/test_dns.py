"""DNS for backend host names (issue 9): a tiny DNS server run by the test
answers for the zone tidepool.test from a dict the test changes; tidepool
uses it through resolv_conf. One PostgreSQL listens on 127.0.0.1 and
127.0.0.2, so moving a name between the two addresses is a failover the
test can see with inet_server_addr()."""

import os
import socket
import struct
import threading
import urllib.request

import psycopg
import pytest

import pgraw
from conftest import Background, PgServer, free_port, wait_until

ZONE = "tidepool.test"


# ------------------------------------------------------------ DNS server

def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


class TinyDns:
    """UDP DNS server on 127.0.0.1:port for one zone. records maps a name to a
    list of IPv4 addresses; names in `drop` get no answer at all and names in
    `servfail` get SERVFAIL. Everything else in the zone is NXDOMAIN."""

    def __init__(self, zone=ZONE, ttl=1):
        self.zone = zone.lower()
        self.ttl = ttl
        self.serial = 1
        self.records = {}
        self.drop = set()
        self.servfail = set()
        self.queries = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, *addrs, bump_serial=False):
        with self.lock:
            self.records[name.lower()] = list(addrs)
            if bump_serial:
                self.serial += 1

    def lookups(self, name, qtype=1):
        with self.lock:
            return sum(1 for n, t in self.queries if n == name.lower() and t == qtype)

    def close(self):
        self.stopping = True
        self.sock.close()

    def _soa_rdata(self):
        return (_encode_name("ns." + self.zone) + _encode_name("admin." + self.zone) +
                struct.pack("!IIIII", self.serial, 60, 60, 600, self.ttl))

    def _answer(self, query):
        qid, flags = struct.unpack("!HH", query[:4])
        pos, labels = 12, []
        while query[pos]:
            n = query[pos]
            labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += n + 1
        qtype, _qclass = struct.unpack("!HH", query[pos + 1:pos + 5])
        question = query[12:pos + 5]
        name = ".".join(labels).lower()
        with self.lock:
            self.queries.append((name, qtype))
            if name in self.drop:
                return None
            addrs = self.records.get(name)
            rcode, answers, authority = 0, [], []
            soa = (_encode_name(self.zone), 6, self._soa_rdata())
            if name in self.servfail:
                rcode = 2
            elif name == self.zone and qtype == 6:
                answers.append((b"\xc0\x0c", 6, self._soa_rdata()))
            elif addrs is not None:
                if qtype == 1:
                    answers += [(b"\xc0\x0c", 1, socket.inet_aton(a)) for a in addrs]
                else:
                    authority.append(soa)          # NOERROR, no data
            elif name == self.zone or name.endswith("." + self.zone):
                rcode = 3
                authority.append(soa)
            else:
                rcode = 5                          # not our zone: refused
        rflags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
        out = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), len(authority), 0) + question
        for owner, typ, rdata in answers + authority:
            out += owner + struct.pack("!HHIH", typ, 1, self.ttl, len(rdata)) + rdata
        return out

    def _serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception:   # a malformed query: no answer
                reply = None
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    return


@pytest.fixture
def dns(tmp_path):
    srv = TinyDns()
    srv.resolv_conf = str(tmp_path / "resolv.conf")
    # c-ares 1.18 drops a port after a nameserver; tidepool reads it itself
    with open(srv.resolv_conf, "w") as f:
        f.write("# for tidepool's DNS tests\nnameserver 127.0.0.1:%d\noptions timeout:1 attempts:2\n"
                % srv.port)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def pg2():
    """A PostgreSQL on 127.0.0.1 and 127.0.0.2 (the same server, two
    addresses: inet_server_addr() tells which one a connection used)."""
    srv = PgServer(max_connections=100)
    try:
        srv.init()
        srv._write(os.path.join(srv.datadir, "postgresql.conf"),
                   "listen_addresses = '127.0.0.1,127.0.0.2'\n", append=True)
        srv._write(os.path.join(srv.datadir, "pg_hba.conf"),
                   "host all all 127.0.0.0/8 trust\n", append=True)
        srv.restart()
    except Exception:
        srv.cleanup()
        raise
    yield srv
    srv.cleanup()


def dns_tp(tidepool, pg2, dns, databases, **kw):
    kw.setdefault("pool_mode", "transaction")
    kw.setdefault("admin_users", "admin")
    return tidepool(pg_server=pg2, databases=databases, resolv_conf=dns.resolv_conf, **kw)


def server_addr(conn):
    return str(conn.execute("select inet_server_addr()").fetchone()[0])


def show(tp, what):
    with tp.connect(dbname="pgbouncer", user="admin") as adm:
        cur = adm.execute("SHOW " + what)
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def login_error(tp, dbname):
    with tp.raw() as c:
        with pytest.raises(pgraw.PgError) as ei:
            c.startup(user="app", database=dbname)
    return ei.value.fields


# ------------------------------------------------------------------ tests

@pytest.mark.hard_timeout(120)
def test_name_moves_to_another_address_without_failing_a_transaction(tidepool, pg2, dns):
    name = "db." + ZONE
    dns.set(name, "127.0.0.1")
    tp = dns_tp(tidepool, pg2, dns, {"appdb": "host=%s port=%d dbname=appdb" % (name, pg2.port)},
                dns_max_ttl=2, metrics_port=free_port())
    seen, errors, stop = [], [], threading.Event()

    def loop():
        with tp.connect() as c:
            while not stop.is_set():
                try:
                    with c.transaction():
                        seen.append(server_addr(c))
                        c.execute("select pg_sleep(0.01)")
                except psycopg.Error as e:
                    errors.append(e)
                    return

    with tp.connect() as held:
        held.execute("begin")
        assert server_addr(held) == "127.0.0.1"
        worker = Background(loop)
        assert wait_until(lambda: len(seen) > 5, 20), tp.log()
        assert set(seen) == {"127.0.0.1"}
        mark = len(seen)
        dns.set(name, "127.0.0.2")
        # new transactions reach the new address within dns_max_ttl (generous deadline)
        assert wait_until(lambda: seen[-3:] == ["127.0.0.2"] * 3, 30), (seen[mark:][-10:], tp.log())
        # the open transaction was never cut: it still runs on the old address
        assert server_addr(held) == "127.0.0.1"
        held.execute("commit")
        assert server_addr(held) == "127.0.0.2"
        stop.set()
        worker.result(20)
    assert errors == []
    assert "changed from 127.0.0.1 to 127.0.0.2" in tp.log()
    # every server left on the old address is closed at its release
    assert wait_until(lambda: {r["addr"] for r in show(tp, "SERVERS")} <= {"127.0.0.2"}, 20)
    hosts = {r["hostname"]: r for r in show(tp, "DNS_HOSTS")}
    assert hosts[name]["addrs"] == "127.0.0.2"
    assert 0 <= hosts[name]["ttl"] <= 2
    lists = {r["list"]: r["items"] for r in show(tp, "LISTS")}
    assert lists["dns_names"] == 1
    metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % tp.main["metrics_port"],
                                     timeout=10).read().decode()
    assert "tidepool_dns_names 1\n" in metrics
    changes = [l for l in metrics.splitlines() if l.startswith("tidepool_dns_changes_total ")]
    assert changes and int(changes[0].split()[1]) >= 1


def test_unresolvable_name_fails_its_clients_only(tidepool, pg2, dns):
    dns.set("slow." + ZONE, "127.0.0.1")
    dns.drop.add("slow." + ZONE)
    tp = dns_tp(tidepool, pg2, dns, {
        "appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg2.port,
        "gone": "host=nosuch.%s port=%d dbname=appdb" % (ZONE, pg2.port),
        "slow": "host=slow.%s port=%d dbname=appdb" % (ZONE, pg2.port),
    }, dns_nxdomain_ttl=30)
    err = login_error(tp, "gone")
    assert err["C"] == "08006", err
    assert "nosuch." + ZONE in err["M"] and "resolve" in err["M"], err
    # a lookup that gets no answer does not hold up anyone else
    slow = Background(login_error, tp, "slow")
    for _ in range(5):
        with tp.connect() as c:
            assert c.execute("select 1").fetchone()[0] == 1
    assert not slow.done(), "the unanswered lookup finished early"
    err = slow.result(60)
    assert err["C"] == "08006" and "slow." + ZONE in err["M"], err
    # a cached failure answers again without a new lookup
    before = dns.lookups("nosuch." + ZONE)
    err = login_error(tp, "gone")
    assert "nosuch." + ZONE in err["M"]
    assert dns.lookups("nosuch." + ZONE) == before
    with tp.connect() as c:
        assert c.execute("select 2").fetchone()[0] == 2
    assert "nosuch." + ZONE not in {r["hostname"] for r in show(tp, "DNS_HOSTS")}


def test_failed_relookup_keeps_the_previous_addresses(tidepool, pg2, dns):
    name = "keep." + ZONE
    dns.set(name, "127.0.0.2")
    tp = dns_tp(tidepool, pg2, dns, {"appdb": "host=%s port=%d dbname=appdb" % (name, pg2.port)},
                dns_max_ttl=1, dns_nxdomain_ttl=1)
    with tp.connect() as c:
        assert server_addr(c) == "127.0.0.2"
        dns.servfail.add(name)
        before = dns.lookups(name)
        assert wait_until(lambda: dns.lookups(name) > before + 1, 20)
        assert server_addr(c) == "127.0.0.2"
        # a new server connection still gets the last good address
        with tp.connect() as d:
            c.execute("begin")
            assert server_addr(c) == "127.0.0.2"
            assert server_addr(d) == "127.0.0.2"
            c.execute("commit")
    assert "keeping its previous addresses" in tp.log()


def test_zone_serial_change_triggers_a_new_lookup(tidepool, pg2, dns):
    dns.ttl = 300                           # the records alone would be kept 5 minutes
    name = "zoned." + ZONE
    dns.set(name, "127.0.0.1")
    tp = dns_tp(tidepool, pg2, dns, {"appdb": "host=%s port=%d dbname=appdb" % (name, pg2.port)},
                dns_max_ttl=300, dns_zone_check_period=1)
    with tp.connect() as c:
        assert server_addr(c) == "127.0.0.1"
        assert wait_until(lambda: any(r["serial"] == 1 for r in show(tp, "DNS_ZONES")), 20)
        zones = show(tp, "DNS_ZONES")
        assert zones == [{"zonename": ZONE, "serial": 1, "count": 1}]
        dns.set(name, "127.0.0.2", bump_serial=True)
        assert wait_until(lambda: server_addr(c) == "127.0.0.2", 30), tp.log()
    assert "serial changed from 1 to 2" in tp.log()
    assert show(tp, "DNS_ZONES")[0]["serial"] == 2


def _addresses_of_concurrent_transactions(tp, dbname, n):
    conns = [tp.connect(dbname=dbname) for _ in range(n)]
    try:
        addrs = []
        for c in conns:
            c.execute("begin")
            addrs.append(server_addr(c))
        return addrs
    finally:
        for c in conns:
            c.close()


def test_host_list_round_robin_spreads_connections(tidepool, pg2, dns):
    dns.set("a." + ZONE, "127.0.0.1")
    dns.set("b." + ZONE, "127.0.0.2")
    tp = dns_tp(tidepool, pg2, dns, {
        "ips": "host=127.0.0.1,127.0.0.2 port=%d dbname=appdb" % pg2.port,
        "names": "host='a.%s, b.%s' port=%d dbname=appdb load_balance_hosts=round-robin"
                 % (ZONE, ZONE, pg2.port),
    })
    for db in ("ips", "names"):
        addrs = _addresses_of_concurrent_transactions(tp, db, 6)
        assert sorted(addrs) == ["127.0.0.1"] * 3 + ["127.0.0.2"] * 3, (db, addrs)
    dbs = {r["name"]: r for r in show(tp, "DATABASES")}
    assert dbs["ips"]["load_balance_hosts"] == "round-robin"
    pools = {r["database"]: r for r in show(tp, "POOLS")}
    assert pools["names"]["load_balance_hosts"] == "round-robin"


def test_refusing_host_is_skipped(tidepool, pg2, dns):
    # nothing listens on 127.0.0.3: connections there are refused
    tp = dns_tp(tidepool, pg2, dns, {
        "rr": "host=127.0.0.3,127.0.0.1 port=%d dbname=appdb" % pg2.port,
        "first": "host=127.0.0.3,127.0.0.2 port=%d dbname=appdb load_balance_hosts=disable" % pg2.port,
    }, server_login_retry=60)
    addrs = _addresses_of_concurrent_transactions(tp, "rr", 5)
    assert addrs == ["127.0.0.1"] * 5
    addrs = _addresses_of_concurrent_transactions(tp, "first", 3)
    assert addrs == ["127.0.0.2"] * 3
    # one attempt went to the refusing host of each pool; then it was skipped
    assert tp.log().count("host 127.0.0.3 skipped for 60s") == 2


def test_every_host_of_a_list_refusing_gives_a_clear_error(tidepool, pg2, dns):
    # hosts that refuse may come back: the client waits for a retry (issue
    # 16, as PgBouncer), and gets the last error at query_wait_timeout
    tp = dns_tp(tidepool, pg2, dns, {
        "appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg2.port,
        "dead": "host=127.0.0.3,127.0.0.4 port=%d dbname=appdb" % pg2.port,
    }, query_wait_timeout=2)
    err = login_error(tp, "dead")
    assert err["C"] == "08006" and "could not connect to server 127.0.0." in err["M"], err
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_resolv_conf_that_cannot_be_read_leaves_ip_addresses_working(tidepool, pg2, dns, tmp_path):
    tp = tidepool(pg_server=pg2, resolv_conf=str(tmp_path / "missing.conf"), databases={
        "appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg2.port,
        "named": "host=db.%s port=%d dbname=appdb" % (ZONE, pg2.port),
    })
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
    err = login_error(tp, "named")
    assert err["C"] == "08006" and "db." + ZONE in err["M"], err
    assert "cannot read resolv_conf" in tp.log()
