//! A small authoritative DNS server on loopback for end-to-end tests.
//!
//! Custom-domain verification looks up CNAME/TXT/A records of names the tests make up. The
//! tests cannot rely on the internet (there is none on CI machines, and real zones change), so
//! they start a [`DnsServer`] on `127.0.0.1`, point the control plane's resolver at it and set
//! the records each step needs. It answers real DNS messages over UDP and TCP, so the code under
//! test goes through its real resolver, wire format included.
//!
//! Every answer has TTL 1 and is authoritative. A name with a CNAME answers the CNAME plus,
//! when the target has records of the asked type here, those records too (as an authoritative
//! server following an in-zone CNAME). A name the test never set is NXDOMAIN; a set name
//! without records of the asked type is NOERROR with an empty answer.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// TTL of every record served: short, so nothing downstream caches an answer for long.
const TTL: u32 = 1;

/// How many CNAMEs in a row the server follows inside its own records.
const MAX_CNAME_CHAIN: usize = 8;

/// The records of one name. A name with a CNAME has no other records.
#[derive(Debug, Default)]
struct Entry {
    cname: Option<Name>,
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    txt: Vec<String>,
}

impl Entry {
    /// The records of type `rtype` (CNAME included), owned by `owner`.
    fn records(&self, owner: &Name, rtype: RecordType) -> Vec<Record> {
        let rdata: Vec<RData> = match rtype {
            RecordType::CNAME => self
                .cname
                .iter()
                .map(|t| RData::CNAME(CNAME(t.clone())))
                .collect(),
            RecordType::A => self.a.iter().map(|ip| RData::A(A(*ip))).collect(),
            RecordType::AAAA => self.aaaa.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect(),
            RecordType::TXT => self.txt.iter().map(|t| RData::TXT(txt(t))).collect(),
            _ => Vec::new(),
        };
        let record = |d| Record::from_rdata(owner.clone(), TTL, d);
        rdata.into_iter().map(record).collect()
    }
}

/// TXT data of `text`: character strings hold at most 255 bytes, so a longer text is split (as
/// zone files do), and an empty text is one empty string.
fn txt(text: &str) -> TXT {
    let empty = text.is_empty().then_some(&[][..]);
    TXT::from_bytes(text.as_bytes().chunks(255).chain(empty).collect())
}

type Zone = Arc<Mutex<HashMap<String, Entry>>>;

/// A DNS server on 127.0.0.1 (UDP and TCP, same random port) answering from records the test sets.
///
/// Dropping it stops the server tasks.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Zone,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds 127.0.0.1 on a free port, UDP then TCP on the same port, and starts serving.
    pub async fn start() -> DnsServer {
        let (udp, tcp) = bind().await;
        let addr = udp.local_addr().expect("local address of the DNS socket");
        let zone = Zone::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, zone.clone(), queries.clone())),
            tokio::spawn(serve_tcp(tcp, zone.clone(), queries.clone())),
        ];
        DnsServer {
            addr,
            zone,
            queries,
            tasks,
        }
    }

    /// Address to send queries to (UDP or TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `name` a CNAME of `target`, replacing any records of `name`.
    pub fn set_cname(&self, name: &str, target: &str) {
        let mut target = parse(target);
        target.set_fqdn(true);
        self.zone().insert(
            key(name),
            Entry {
                cname: Some(target),
                ..Entry::default()
            },
        );
    }

    /// Sets the A records of `name` (replacing its A records and any CNAME).
    pub fn set_a(&self, name: &str, addrs: &[Ipv4Addr]) {
        self.update(name, |e| e.a = addrs.to_vec());
    }

    /// Sets the AAAA records of `name` (replacing its AAAA records and any CNAME).
    pub fn set_aaaa(&self, name: &str, addrs: &[Ipv6Addr]) {
        self.update(name, |e| e.aaaa = addrs.to_vec());
    }

    /// Sets the one TXT record of `name` (replacing its TXT records and any CNAME).
    pub fn set_txt(&self, name: &str, text: &str) {
        self.update(name, |e| e.txt = vec![text.to_string()]);
    }

    /// Removes every record of `name`: it answers NXDOMAIN again.
    pub fn remove(&self, name: &str) {
        self.zone().remove(&key(name));
    }

    /// How many queries the server answered, over UDP and TCP.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn zone(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.zone.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Entry)) {
        let mut zone = self.zone();
        let entry = zone.entry(key(name)).or_default();
        entry.cname = None;
        change(entry);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Aborting the TCP task drops its JoinSet, which aborts the open connections too.
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

fn parse(name: &str) -> Name {
    Name::from_utf8(name).unwrap_or_else(|e| panic!("invalid DNS name {name:?}: {e}"))
}

/// Map key of a name: ASCII (punycode) form, lowercase, without the trailing dot.
fn key(name: &str) -> String {
    name_key(&parse(name))
}

fn name_key(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// UDP on a random port of 127.0.0.1, then TCP on the same port; a new port if that one is taken.
async fn bind() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a UDP socket on 127.0.0.1");
        let addr = udp.local_addr().expect("local address of the UDP socket");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no port of 127.0.0.1 was free for both UDP and TCP");
}

async fn serve_udp(socket: UdpSocket, zone: Zone, queries: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(response) = answer(&buf[..len], &zone, &queries) else {
            continue;
        };
        // Over UDP an answer must fit the size the client announced (512 without EDNS).
        let limit = Message::from_vec(&buf[..len]).map_or(512, |m| m.max_payload());
        let mut bytes = response.to_vec().expect("encode a DNS response");
        if bytes.len() > usize::from(limit) {
            bytes = response
                .truncate()
                .to_vec()
                .expect("encode a truncated DNS response");
        }
        let _ = socket.send_to(&bytes, peer).await;
    }
}

async fn serve_tcp(listener: TcpListener, zone: Zone, queries: Arc<AtomicUsize>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(serve_tcp_connection(stream, zone.clone(), queries.clone()));
    }
}

/// Messages over TCP carry a 2-byte big-endian length prefix; a connection may carry several.
async fn serve_tcp_connection(mut stream: TcpStream, zone: Zone, queries: Arc<AtomicUsize>) {
    while let Ok(len) = stream.read_u16().await {
        let mut request = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(response) = answer(&request, &zone, &queries) else {
            return;
        };
        let bytes = response.to_vec().expect("encode a DNS response");
        let Ok(len) = u16::try_from(bytes.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// The response to one request, or `None` for bytes that are not a DNS query.
fn answer(request: &[u8], zone: &Zone, queries: &AtomicUsize) -> Option<Message> {
    let request = Message::from_vec(request).ok()?;
    if request.message_type() != MessageType::Query {
        return None;
    }
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_authoritative(true)
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true);
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        response.set_edns(edns);
    }
    let query = match (request.op_code(), request.queries()) {
        (OpCode::Query, [query]) => query.clone(),
        (OpCode::Query, _) => return Some(with_code(response, ResponseCode::FormErr)),
        _ => return Some(with_code(response, ResponseCode::NotImp)),
    };
    response.add_query(query.clone());
    queries.fetch_add(1, Ordering::SeqCst);

    let zone = zone.lock().unwrap_or_else(|e| e.into_inner());
    let Some(entry) = zone.get(&name_key(query.name())) else {
        return Some(with_code(response, ResponseCode::NXDomain));
    };
    let rtype = query.query_type();
    // Follow CNAMEs inside the zone, adding each link, then the records of the last name.
    let (mut owner, mut entry) = (query.name().clone(), entry);
    for _ in 0..MAX_CNAME_CHAIN {
        let Some(target) = entry.cname.as_ref().filter(|_| rtype != RecordType::CNAME) else {
            break;
        };
        response.add_answers(entry.records(&owner, RecordType::CNAME));
        match zone.get(&name_key(target)) {
            Some(next) => (owner, entry) = (target.clone(), next),
            None => return Some(response),
        }
    }
    response.add_answers(entry.records(&owner, rtype));
    Some(response)
}

fn with_code(mut response: Message, code: ResponseCode) -> Message {
    response.set_response_code(code);
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::proto::xfer::Protocol;
    use hickory_resolver::proto::ProtoErrorKind;
    use hickory_resolver::{ResolveError, ResolveErrorKind, TokioResolver};

    use super::*;

    /// A resolver that asks only `addr`, once, and caches nothing: the way the control plane's
    /// custom-domain checks are meant to build theirs.
    fn resolver(addr: SocketAddr, protocol: Protocol) -> TokioResolver {
        let mut config = ResolverConfig::new();
        config.add_name_server(NameServerConfig::new(addr, protocol));
        let mut opts = ResolverOpts::default();
        opts.attempts = 1;
        opts.timeout = Duration::from_secs(5);
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.use_hosts_file = ResolveHosts::Never;
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(opts)
            .build()
    }

    async fn a(resolver: &TokioResolver, name: &str) -> Result<Vec<Ipv4Addr>, ResolveError> {
        let lookup = resolver.lookup(name, RecordType::A).await?;
        Ok(lookup
            .iter()
            .filter_map(|r| r.as_a().map(|a| a.0))
            .collect())
    }

    async fn cname(resolver: &TokioResolver, name: &str) -> Result<Vec<String>, ResolveError> {
        let lookup = resolver.lookup(name, RecordType::CNAME).await?;
        Ok(lookup
            .iter()
            .filter_map(|r| r.as_cname().map(|c| c.0.to_ascii()))
            .collect())
    }

    /// The response code of a "no records" error, `None` for any other error.
    fn no_records_code(err: &ResolveError) -> Option<ResponseCode> {
        match err.kind() {
            ResolveErrorKind::Proto(proto) => match proto.kind() {
                ProtoErrorKind::NoRecordsFound { response_code, .. } => Some(*response_code),
                _ => None,
            },
            _ => None,
        }
    }

    #[tokio::test]
    async fn answers_cname_a_aaaa_and_txt() {
        let dns = DnsServer::start().await;
        let resolver = resolver(dns.addr(), Protocol::Udp);
        dns.set_cname("App.Customer.test.", "edge.skyport.test");
        dns.set_a("edge.skyport.test", &[Ipv4Addr::new(192, 0, 2, 7)]);
        dns.set_aaaa("edge.skyport.test", &["2001:db8::7".parse().unwrap()]);
        dns.set_txt("_skyport.app.customer.test", "skyport-verify=abc123");

        let target = cname(&resolver, "app.customer.test.").await.unwrap();
        assert_eq!(target, ["edge.skyport.test."]);
        // Case and the trailing dot do not matter.
        let target = cname(&resolver, "APP.customer.TEST").await.unwrap();
        assert_eq!(target, ["edge.skyport.test."]);
        // The in-zone CNAME is followed in the same answer.
        let ips = a(&resolver, "app.customer.test.").await.unwrap();
        assert_eq!(ips, [Ipv4Addr::new(192, 0, 2, 7)]);
        let ipv6 = resolver.ipv6_lookup("edge.skyport.test.").await.unwrap();
        let ipv6: Vec<Ipv6Addr> = ipv6.iter().map(|aaaa| aaaa.0).collect();
        assert_eq!(ipv6, ["2001:db8::7".parse::<Ipv6Addr>().unwrap()]);
        let txt = resolver
            .txt_lookup("_skyport.app.customer.test.")
            .await
            .unwrap();
        let txt: Vec<String> = txt.iter().map(ToString::to_string).collect();
        assert_eq!(txt, ["skyport-verify=abc123"]);
    }

    #[tokio::test]
    async fn unknown_names_are_nxdomain_and_missing_types_are_empty() {
        let dns = DnsServer::start().await;
        let resolver = resolver(dns.addr(), Protocol::Udp);
        dns.set_a("only-a.test", &[Ipv4Addr::new(192, 0, 2, 1)]);

        let err = cname(&resolver, "nowhere.test.").await.unwrap_err();
        assert!(err.is_nx_domain() && err.is_no_records_found(), "{err:?}");
        assert_eq!(no_records_code(&err), Some(ResponseCode::NXDomain));

        let err = cname(&resolver, "only-a.test.").await.unwrap_err();
        assert!(!err.is_nx_domain() && err.is_no_records_found(), "{err:?}");
        assert_eq!(no_records_code(&err), Some(ResponseCode::NoError));

        // A CNAME to a name this server does not know: the resolver chases it and finds nothing.
        dns.set_cname("dangling.test", "gone.test");
        let err = a(&resolver, "dangling.test.").await.unwrap_err();
        assert!(err.is_no_records_found(), "{err:?}");
    }

    #[tokio::test]
    async fn changes_show_at_once_and_queries_are_counted() {
        let dns = DnsServer::start().await;
        let resolver = resolver(dns.addr(), Protocol::Udp);
        assert_eq!(dns.queries(), 0);

        dns.set_cname("www.customer.test", "one.skyport.test");
        assert_eq!(
            cname(&resolver, "www.customer.test.").await.unwrap(),
            ["one.skyport.test."]
        );
        dns.set_cname("www.customer.test", "two.skyport.test");
        assert_eq!(
            cname(&resolver, "www.customer.test.").await.unwrap(),
            ["two.skyport.test."]
        );
        dns.remove("www.customer.test.");
        let err = cname(&resolver, "www.customer.test.").await.unwrap_err();
        assert!(err.is_nx_domain(), "{err:?}");
        // An A record replaces the CNAME.
        dns.set_cname("www.customer.test", "two.skyport.test");
        dns.set_a("www.customer.test", &[Ipv4Addr::new(192, 0, 2, 9)]);
        assert!(cname(&resolver, "www.customer.test.")
            .await
            .unwrap_err()
            .is_no_records_found());
        assert_eq!(dns.queries(), 4, "every lookup reached the server");
    }

    #[tokio::test]
    async fn answers_over_tcp() {
        let dns = DnsServer::start().await;
        let resolver = resolver(dns.addr(), Protocol::Tcp);
        // Longer than one 255-byte character string and than a 512-byte UDP answer.
        let long = "v".repeat(700);
        dns.set_txt("long.test", &long);
        let txt = resolver.txt_lookup("long.test.").await.unwrap();
        let txt: Vec<String> = txt.iter().map(ToString::to_string).collect();
        assert_eq!(txt, [long]);
        assert!(!cname(&resolver, "long.test.")
            .await
            .unwrap_err()
            .is_nx_domain());
        assert_eq!(dns.queries(), 2);
    }
}
