//! A small authoritative DNS server on loopback for tests.
//!
//! It answers over UDP and TCP on the same 127.0.0.1 port, from records the test adds (also
//! after it started). Names the server does not know get NXDOMAIN; known names without a
//! record of the asked type get an empty NOERROR answer (NODATA). Answers carry TTL 0, so a
//! caching resolver sees records added later.

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// The largest answer sent over UDP to a client that did not announce a larger size (EDNS).
const CLASSIC_UDP_LIMIT: usize = 512;
/// The payload size this server announces in its EDNS answers.
const EDNS_PAYLOAD: u16 = 1232;

#[derive(Default)]
struct Zone {
    /// Records by lower-case name without the trailing dot.
    records: HashMap<String, Vec<RData>>,
    /// Names answered with SERVFAIL.
    failing: HashSet<String>,
    /// Queries received, by lower-case name without the trailing dot.
    queries: HashMap<String, usize>,
    /// The TTL of every answer (0 unless set: tests see record changes at once).
    ttl: u32,
}

type Shared = Arc<Mutex<Zone>>;

fn lock(zone: &Shared) -> MutexGuard<'_, Zone> {
    zone.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A DNS server on 127.0.0.1 (UDP and TCP, same port). Stops when dropped.
pub struct LoopbackDns {
    addr: SocketAddr,
    zone: Shared,
    tasks: Vec<JoinHandle<()>>,
}

impl LoopbackDns {
    /// Binds UDP and TCP on the same free port of 127.0.0.1 and starts answering.
    ///
    /// # Panics
    /// When no port can be bound (a test setup failure).
    pub async fn start() -> LoopbackDns {
        let zone: Shared = Arc::default();
        let mut last_err = None;
        for _ in 0..20 {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind a UDP socket on 127.0.0.1");
            let addr = udp.local_addr().expect("local address of the UDP socket");
            match TcpListener::bind(addr).await {
                Ok(tcp) => {
                    let tasks =
                        vec![tokio::spawn(serve_udp(udp, zone.clone())), tokio::spawn(serve_tcp(tcp, zone.clone()))];
                    return LoopbackDns { addr, zone, tasks };
                }
                Err(e) => last_err = Some(e),
            }
        }
        panic!("no port of 127.0.0.1 free for both UDP and TCP: {last_err:?}");
    }

    /// Answers with this TTL from now on, so resolvers may cache them (like a caching
    /// resolver in front of real DNS).
    pub fn set_ttl(&self, seconds: u32) {
        lock(&self.zone).ttl = seconds;
    }

    /// The address to send queries to (UDP or TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn add(&self, name: &str, rdata: RData) {
        lock(&self.zone).records.entry(key(name)).or_default().push(rdata);
    }

    /// Adds an A record.
    pub fn add_a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    /// Adds an AAAA record.
    pub fn add_aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    /// Adds a TXT record. Text longer than 255 bytes is split into several
    /// character-strings of at most 255 bytes (RFC 7208 §3.3, RFC 6376 §3.6.2.2), which
    /// readers concatenate.
    pub fn add_txt(&self, name: &str, text: &str) {
        let chunks: Vec<&[u8]> = if text.is_empty() { vec![&[][..]] } else { text.as_bytes().chunks(255).collect() };
        self.add(name, RData::TXT(TXT::from_bytes(chunks)));
    }

    /// Adds an MX record.
    ///
    /// # Panics
    /// When `exchange` is not a valid domain name (a test mistake).
    pub fn add_mx(&self, name: &str, preference: u16, exchange: &str) {
        let exchange = Name::from_ascii(fqdn(exchange)).expect("a valid MX exchange name");
        self.add(name, RData::MX(MX::new(preference, exchange)));
    }

    /// Makes the server answer SERVFAIL for every query about `name` (a DNS failure).
    pub fn add_servfail(&self, name: &str) {
        lock(&self.zone).failing.insert(key(name));
    }

    /// Removes every record of `name` (and its SERVFAIL mark): it becomes unknown (NXDOMAIN).
    pub fn remove(&self, name: &str) {
        let mut zone = lock(&self.zone);
        zone.records.remove(&key(name));
        zone.failing.remove(&key(name));
    }

    /// How many queries (of any type, UDP or TCP) asked about `name`.
    pub fn queries(&self, name: &str) -> usize {
        lock(&self.zone).queries.get(&key(name)).copied().unwrap_or(0)
    }

    /// How many queries the server received in all.
    pub fn total_queries(&self) -> usize {
        lock(&self.zone).queries.values().sum()
    }
}

impl Drop for LoopbackDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// An address of 127.0.0.1 where nothing listens (neither UDP nor TCP) at the time of the
/// call: a DNS server that never answers.
///
/// # Panics
/// When no port can be bound (a test setup failure).
pub fn unused_loopback_addr() -> SocketAddr {
    let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP socket on 127.0.0.1");
    let addr = udp.local_addr().expect("local address of the UDP socket");
    drop(udp);
    addr
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_owned() } else { format!("{name}.") }
}

async fn serve_udp(sock: UdpSocket, zone: Shared) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else { continue };
        if let Some(bytes) = answer(&buf[..n], &zone, true) {
            let _ = sock.send_to(&bytes, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(serve_tcp_conn(stream, zone.clone()));
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, zone: Shared) {
    loop {
        let Ok(len) = stream.read_u16().await else { return };
        let mut msg = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        let Some(bytes) = answer(&msg, &zone, false) else { return };
        let Ok(len) = u16::try_from(bytes.len()) else { return };
        if stream.write_u16(len).await.is_err() || stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// The answer to one query message (None when it is not a query at all).
fn answer(query: &[u8], zone: &Shared, udp: bool) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
    answer.metadata.authoritative = true;
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        answer.set_edns(edns);
    }
    if query.metadata.op_code != OpCode::Query {
        answer.metadata.response_code = ResponseCode::NotImp;
        return answer.to_vec().ok();
    }
    {
        let mut zone = lock(zone);
        for q in &query.queries {
            answer.add_query(q.clone());
            let name = key(&q.name().to_ascii());
            *zone.queries.entry(name.clone()).or_default() += 1;
            if zone.failing.contains(&name) {
                answer.metadata.response_code = ResponseCode::ServFail;
                continue;
            }
            let Some(records) = zone.records.get(&name) else {
                answer.metadata.response_code = ResponseCode::NXDomain;
                continue;
            };
            for rdata in records {
                if q.query_type() == RecordType::ANY || rdata.record_type() == q.query_type() {
                    answer.add_answer(Record::from_rdata(q.name().clone(), zone.ttl, rdata.clone()));
                }
            }
        }
    }
    let bytes = answer.to_vec().ok()?;
    let limit = query.edns.as_ref().map_or(CLASSIC_UDP_LIMIT, |e| usize::from(e.max_payload()).max(CLASSIC_UDP_LIMIT));
    if udp && bytes.len() > limit {
        // Too big for this client over UDP: say so (TC), and let it ask again over TCP.
        answer.answers.clear();
        answer.metadata.truncation = true;
        return answer.to_vec().ok();
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::TokioResolver;
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use std::time::Duration;

    fn resolver(server: SocketAddr, tcp_only: bool) -> TokioResolver {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let connections = if tcp_only { vec![tcp] } else { vec![udp, tcp] };
        let config =
            ResolverConfig::from_parts(None, vec![], vec![NameServerConfig::new(server.ip(), true, connections)]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()).with_options(opts).build().unwrap()
    }

    fn txt_strings(lookup: &hickory_resolver::lookup::Lookup) -> Vec<Vec<Vec<u8>>> {
        lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.iter().map(|s| s.to_vec()).collect()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_a_aaaa_mx_and_counts_queries() {
        let dns = LoopbackDns::start().await;
        dns.add_a("Host.Example.test.", Ipv4Addr::new(127, 0, 0, 9));
        dns.add_aaaa("host.example.test", Ipv6Addr::LOCALHOST);
        dns.add_mx("example.test", 10, "mx.example.test");
        let r = resolver(dns.addr(), false);

        let v4: Vec<_> = r.ipv4_lookup("host.example.test.").await.unwrap().answers().to_vec();
        assert_eq!(v4.len(), 1);
        assert_eq!(v4[0].data, RData::A(A(Ipv4Addr::new(127, 0, 0, 9))));
        let v6 = r.ipv6_lookup("host.example.test.").await.unwrap();
        assert_eq!(v6.answers()[0].data, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));
        let mx = r.mx_lookup("example.test.").await.unwrap();
        match &mx.answers()[0].data {
            RData::MX(mx) => {
                assert_eq!(mx.preference, 10);
                assert_eq!(mx.exchange.to_ascii(), "mx.example.test.");
            }
            other => panic!("not an MX: {other:?}"),
        }
        assert_eq!(dns.queries("HOST.example.test"), 2, "name matching ignores case and the final dot");
        assert_eq!(dns.queries("example.test."), 1);
        assert_eq!(dns.total_queries(), 3);
    }

    #[tokio::test]
    async fn unknown_names_are_nxdomain_and_known_names_without_the_type_are_nodata() {
        let dns = LoopbackDns::start().await;
        dns.add_a("known.test", Ipv4Addr::LOCALHOST);
        let r = resolver(dns.addr(), false);
        let err = r.txt_lookup("unknown.test.").await.unwrap_err();
        assert!(err.is_nx_domain(), "{err:?}");
        let err = r.txt_lookup("known.test.").await.unwrap_err();
        assert!(err.is_no_records_found() && !err.is_nx_domain(), "{err:?}");
        assert_eq!(dns.queries("unknown.test"), 1);
    }

    #[tokio::test]
    async fn records_added_after_start_and_after_a_miss_are_served() {
        let dns = LoopbackDns::start().await;
        let r = resolver(dns.addr(), false);
        assert!(r.ipv4_lookup("later.test.").await.is_err());
        dns.add_a("later.test", Ipv4Addr::LOCALHOST);
        assert_eq!(r.ipv4_lookup("later.test.").await.unwrap().answers().len(), 1);
        dns.remove("later.test");
        assert!(r.ipv4_lookup("later.test.").await.unwrap_err().is_nx_domain());
    }

    #[tokio::test]
    async fn long_txt_is_split_into_255_byte_strings() {
        let dns = LoopbackDns::start().await;
        let long = "v=DKIM1; k=rsa; p=".to_owned() + &"A".repeat(600);
        dns.add_txt("sel._domainkey.example.test", &long);
        dns.add_txt("example.test", "v=spf1 -all");
        let r = resolver(dns.addr(), false);
        let txt = txt_strings(&r.txt_lookup("sel._domainkey.example.test.").await.unwrap());
        assert_eq!(txt.len(), 1);
        assert_eq!(txt[0].iter().map(Vec::len).collect::<Vec<_>>(), vec![255, 255, 108]);
        assert_eq!(txt[0].concat(), long.as_bytes());
        let txt = txt_strings(&r.txt_lookup("example.test.").await.unwrap());
        assert_eq!(txt, vec![vec![b"v=spf1 -all".to_vec()]]);
    }

    #[tokio::test]
    async fn answers_over_tcp_and_truncates_big_udp_answers() {
        let dns = LoopbackDns::start().await;
        for i in 0..12 {
            dns.add_txt("big.test", &format!("{i:02} {}", "x".repeat(250)));
        }
        // Over TCP only.
        let r = resolver(dns.addr(), true);
        assert_eq!(txt_strings(&r.txt_lookup("big.test.").await.unwrap()).len(), 12);
        // Over UDP: ~3 KB does not fit the 1232 bytes the resolver announces, so the answer is
        // truncated and the resolver asks again over TCP.
        let r = resolver(dns.addr(), false);
        assert_eq!(txt_strings(&r.txt_lookup("big.test.").await.unwrap()).len(), 12);
        assert_eq!(dns.queries("big.test"), 3);
    }

    #[tokio::test]
    async fn servfail_is_a_resolver_error() {
        let dns = LoopbackDns::start().await;
        dns.add_servfail("broken.test");
        let r = resolver(dns.addr(), false);
        let err = r.txt_lookup("broken.test.").await.unwrap_err();
        assert!(!err.is_no_records_found(), "{err:?}");
    }

    #[tokio::test]
    async fn stops_when_dropped() {
        let dns = LoopbackDns::start().await;
        let addr = dns.addr();
        drop(dns);
        tokio::task::yield_now().await;
        assert!(TcpStream::connect(addr).await.is_err(), "the TCP listener is closed");
    }
}
