//! Rules of the networking add-ons: custom domain names, the DNS record that proves a
//! domain is the owner's, internal-endpoint CIDR ranges, and which plans may have them.
//!
//! Problem codes (the request field in parentheses):
//!
//! - `invalid_domain` (`domain`): not a host name of at least two labels, a label longer
//!   than 63 bytes or the name longer than 253, characters outside letters, digits and
//!   `-` (after IDNA: Unicode names are accepted and stored as punycode), an IP address,
//!   or a wildcard anywhere but as the whole first label;
//! - `wildcard_needs_certificate` (`certificate`): a wildcard domain needs an uploaded
//!   certificate covering it — Skyport's CA does not issue wildcards;
//! - `certificate_domain_mismatch` (`certificate`): the uploaded certificate does not
//!   cover the domain;
//! - `invalid_cidr` (`allowed_cidrs`): not `address/prefix`, or host bits set;
//! - `plan_not_supported` (409): the add-on is not available on serverless.

use std::net::IpAddr;

use ipnet::IpNet;

/// Where a domain stands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// The DNS record is not (yet) there; the domain is not served.
    PendingDns,
    /// Verified and served by SNI.
    Active,
}

impl DomainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::PendingDns => "pending_dns",
            DomainStatus::Active => "active",
        }
    }
}

use super::Plan;

/// Most CIDR ranges an internal endpoint accepts.
pub const MAX_ALLOWED_CIDRS: usize = 64;

/// Why a name or range was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRejection {
    pub code: &'static str,
    pub field: &'static str,
    pub detail: String,
}

fn reject(code: &'static str, field: &'static str, detail: impl Into<String>) -> NetworkRejection {
    NetworkRejection {
        code,
        field,
        detail: detail.into(),
    }
}

/// A custom domain: lower-case ASCII (punycode), no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainName(String);

impl DomainName {
    /// Checks and normalises a domain as sent by the owner.
    pub fn parse(raw: &str) -> Result<Self, NetworkRejection> {
        let invalid = |why: &str| {
            reject(
                "invalid_domain",
                "domain",
                format!("`{raw}` is not a usable domain name: {why}"),
            )
        };
        let trimmed = raw.trim().trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.parse::<IpAddr>().is_ok() {
            return Err(invalid(
                "it is an IP address; custom domains are host names",
            ));
        }
        let (wildcard, rest) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if rest.contains('*') {
            return Err(invalid(
                "a wildcard may only be the whole first label (`*.example.com`)",
            ));
        }
        let ascii = idna::domain_to_ascii_strict(rest)
            .map_err(|_| invalid("it is not a valid internationalised domain name (IDNA)"))?;
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(invalid(
                "it needs at least two labels, like `mqtt.example.com`",
            ));
        }
        if ascii.len() + if wildcard { 2 } else { 0 } > 253 {
            return Err(invalid("it is longer than 253 characters"));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid("every label must be 1 to 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(invalid(
                    "labels hold letters, digits and inner hyphens only",
                ));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid("the top-level label cannot be all digits"));
        }
        Ok(Self(if wildcard {
            format!("*.{ascii}")
        } else {
            ascii
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

impl std::fmt::Display for DomainName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a certificate with these subject alternative names is valid for `domain`
/// (RFC 6125: a `*.` SAN covers exactly one label; a wildcard domain needs that very
/// wildcard SAN).
pub fn covers(sans: &[String], domain: &DomainName) -> bool {
    let domain = domain.as_str();
    sans.iter().any(|san| {
        let san = san.trim_end_matches('.').to_ascii_lowercase();
        if san == domain {
            return true;
        }
        match san.strip_prefix("*.") {
            Some(parent) if !domain.starts_with("*.") => domain
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
            _ => false,
        }
    })
}

/// The DNS record that points a custom domain at its deployment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DnsRecord {
    /// The name to create the record for (the custom domain).
    pub name: String,
    /// `CNAME` to the deployment's default host; `A`/`AAAA` when that host is an address.
    #[serde(rename = "type")]
    pub record_type: String,
    /// What the record must point to.
    pub value: String,
}

impl DnsRecord {
    /// The record to create for `domain` on a deployment whose default host is `host`.
    pub fn for_host(domain: &DomainName, host: &str) -> Self {
        let (record_type, value) = match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ("A", ip.to_string()),
            Ok(IpAddr::V6(ip)) => ("AAAA", ip.to_string()),
            Err(_) => ("CNAME", host.trim_end_matches('.').to_owned()),
        };
        Self {
            name: domain.to_string(),
            record_type: record_type.into(),
            value,
        }
    }
}

/// Parses internal-endpoint ranges: `10.0.0.0/8`, `fd00::/8`, or a bare address (one host).
pub fn parse_cidrs(raw: &[String]) -> Result<Vec<IpNet>, NetworkRejection> {
    if raw.is_empty() {
        return Err(reject(
            "invalid_cidr",
            "allowed_cidrs",
            "give at least one range, e.g. the peered VPC's `10.0.0.0/16`",
        ));
    }
    if raw.len() > MAX_ALLOWED_CIDRS {
        return Err(reject(
            "invalid_cidr",
            "allowed_cidrs",
            format!("at most {MAX_ALLOWED_CIDRS} ranges"),
        ));
    }
    let mut out: Vec<IpNet> = Vec::with_capacity(raw.len());
    for entry in raw {
        let entry = entry.trim();
        let net = match entry.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match entry.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return Err(reject(
                        "invalid_cidr",
                        "allowed_cidrs",
                        format!("`{entry}` is not a CIDR range like `10.0.0.0/16`"),
                    ))
                }
            },
        };
        if net.trunc() != net {
            return Err(reject(
                "invalid_cidr",
                "allowed_cidrs",
                format!(
                    "`{entry}` has host bits set; did you mean `{}`?",
                    net.trunc()
                ),
            ));
        }
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

/// A networking add-on, for plan checks and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOn {
    CustomDomain,
    NatGateway,
    InternalEndpoint,
}

impl AddOn {
    pub fn describe(self) -> &'static str {
        match self {
            AddOn::CustomDomain => "custom domains",
            AddOn::NatGateway => "a NAT gateway",
            AddOn::InternalEndpoint => "an internal endpoint",
        }
    }

    /// Whether `plan` may have this add-on (the seed's rules: none on serverless).
    pub fn allowed_on(self, plan: Plan) -> bool {
        !matches!(plan, Plan::Serverless)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(
            DomainName::parse("MQTT.Example.COM.").unwrap().as_str(),
            "mqtt.example.com"
        );
        assert_eq!(
            DomainName::parse("bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
        assert!(DomainName::parse("*.example.com").unwrap().is_wildcard());
        for bad in [
            "",
            "localhost",
            "127.0.0.1",
            "a..b",
            "-a.example.com",
            "a_b.example.com",
            "foo.*.example.com",
            "*example.com",
            "example.123",
            &format!("{}.com", "a".repeat(64)),
        ] {
            let err = DomainName::parse(bad).unwrap_err();
            assert_eq!(err.code, "invalid_domain", "{bad}");
        }
    }

    #[test]
    fn certificates_cover_domains_per_rfc_6125() {
        let d = |s| DomainName::parse(s).unwrap();
        let sans = vec!["*.example.com".to_owned(), "exact.test".to_owned()];
        assert!(covers(&sans, &d("mqtt.example.com")));
        assert!(covers(&sans, &d("exact.test")));
        assert!(covers(&sans, &d("*.example.com")));
        assert!(!covers(&sans, &d("a.b.example.com")));
        assert!(!covers(&sans, &d("example.com")));
        assert!(!covers(&["mqtt.example.com".into()], &d("*.example.com")));
    }

    #[test]
    fn dns_record_follows_the_default_host() {
        let d = DomainName::parse("mqtt.example.com").unwrap();
        assert_eq!(
            DnsRecord::for_host(&d, "abc.skyport.test").record_type,
            "CNAME"
        );
        let a = DnsRecord::for_host(&d, "127.0.0.1");
        assert_eq!(
            (a.record_type.as_str(), a.value.as_str()),
            ("A", "127.0.0.1")
        );
        assert_eq!(DnsRecord::for_host(&d, "::1").record_type, "AAAA");
    }

    #[test]
    fn cidrs_are_strict() {
        let ok = parse_cidrs(&[
            "10.0.0.0/8".into(),
            "192.168.1.7".into(),
            "10.0.0.0/8".into(),
        ])
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].to_string(), "192.168.1.7/32");
        for bad in [
            vec![],
            vec!["10.0.0.1/8".to_owned()],
            vec!["nope".to_owned()],
        ] {
            assert_eq!(parse_cidrs(&bad).unwrap_err().code, "invalid_cidr");
        }
    }
}
