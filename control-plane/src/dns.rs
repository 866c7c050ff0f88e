//! DNS verification of custom domains.
//!
//! A domain is the owner's once its DNS record points at the deployment: a CNAME to the
//! deployment's default host, or (documented alternative, and the only choice when the
//! default host is an address) A/AAAA records equal to the default host's addresses.
//! Lookups go to the resolver the operator names with `--dns-server`, or the system's;
//! nothing is cached, so a record fixed by the owner is seen on the next check.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use serde::Serialize;

use crate::domain::network::{DnsRecord, DomainName};

/// What DNS answered for a domain, as shown to the owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// CNAME targets of the domain (no trailing dot).
    pub cname: Vec<String>,
    /// The addresses the domain resolves to (following CNAMEs).
    pub addresses: Vec<IpAddr>,
    /// Why the lookup failed, when it did for another reason than "no such record".
    pub error: Option<String>,
}

/// Looks domains up through the configured resolver.
pub struct DnsVerifier {
    resolver: TokioResolver,
}

impl DnsVerifier {
    /// A verifier asking `server` (UDP, TCP for truncated answers), or the system's
    /// resolvers (`/etc/resolv.conf`) without one.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut builder = match server {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => TokioResolver::builder_tokio()?,
        };
        let options: &mut ResolverOpts = builder.options_mut();
        // Every check must see the record as it is now.
        options.cache_size = 0;
        options.attempts = 2;
        options.timeout = std::time::Duration::from_secs(3);
        Ok(Self {
            resolver: builder.build(),
        })
    }

    /// What DNS says about `domain` now.
    pub async fn observe(&self, domain: &DomainName) -> Observation {
        let name = format!("{}.", domain.as_str());
        let mut observation = Observation::default();
        match self.resolver.lookup(name.as_str(), RecordType::CNAME).await {
            Ok(lookup) => {
                for rdata in lookup.iter() {
                    if let RData::CNAME(target) = rdata {
                        observation.cname.push(normalise(&target.to_string()));
                    }
                }
            }
            Err(err) => note(&mut observation, &err),
        }
        match self.resolver.lookup_ip(name.as_str()).await {
            Ok(ips) => observation.addresses = ips.iter().collect(),
            Err(err) => note(&mut observation, &err),
        }
        observation.addresses.sort();
        observation.addresses.dedup();
        observation
    }

    /// The addresses `host` stands for: itself when it is one, else its A/AAAA records.
    async fn host_addresses(&self, host: &str) -> Vec<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![ip];
        }
        match self.resolver.lookup_ip(format!("{host}.")).await {
            Ok(ips) => ips.iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether `domain` points at `record.value` (see the module docs), and what DNS said.
    pub async fn verify(&self, domain: &DomainName, record: &DnsRecord) -> (bool, Observation) {
        let observation = self.observe(domain).await;
        let expected = normalise(&record.value);
        if observation.cname.contains(&expected) {
            return (true, observation);
        }
        if observation.addresses.is_empty() {
            return (false, observation);
        }
        let host_addresses = self.host_addresses(&expected).await;
        let matched = !host_addresses.is_empty()
            && observation
                .addresses
                .iter()
                .all(|ip| host_addresses.contains(ip));
        (matched, observation)
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Records a failed lookup, unless it only says the record does not exist.
fn note(observation: &mut Observation, err: &ResolveError) {
    if err.is_no_records_found() || err.is_nx_domain() {
        return;
    }
    observation.error.get_or_insert_with(|| err.to_string());
}
