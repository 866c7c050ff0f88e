//! Custom server certificates uploaded by deployment owners, checked before they are
//! stored so a broker is never handed TLS material it cannot serve.
//!
//! Rules, each with its problem code (the request field in parentheses):
//!
//! - every part is PEM: `cert` holds one or more `CERTIFICATE` blocks (leaf first, then
//!   its chain), `key` one unencrypted private key (PKCS#8, PKCS#1 RSA or SEC1 EC),
//!   `ca_cert` one or more certificates — `tls_not_pem` (`cert`, `key`, `ca_cert`);
//! - a passphrase-protected key is refused: the broker has no passphrase —
//!   `tls_key_encrypted` (`key`); a key type rustls cannot sign with — `tls_key_unsupported`;
//! - two-way TLS needs the client CA — `tls_ca_required` (`ca_cert`); one-way TLS takes
//!   none — `tls_ca_not_allowed` (`ca_cert`);
//! - the leaf is X.509 v3 — `tls_cert_not_v3`, valid now — `tls_cert_not_yet_valid`,
//!   `tls_cert_expired` (`cert`);
//! - the key is the leaf's: same SubjectPublicKeyInfo — `tls_key_mismatch` (`key`);
//! - the chain is complete — `tls_chain_incomplete` (`cert`): a leaf that is not
//!   self-signed must be followed by its issuer's certificate, and every further
//!   certificate by its own issuer's, except the last one, which may be issued by a root
//!   that clients already trust (roots are optional in a served chain, intermediates are
//!   not). Issuers are matched by distinguished name.

use chrono::{DateTime, Utc};
use rustls_pemfile::Item;
use skyport_settings::security::TlsType;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Version};

/// What the owner uploaded, as sent.
pub struct TlsUpload<'a> {
    pub tls_type: TlsType,
    pub cert: &'a str,
    pub key: &'a str,
    pub ca_cert: Option<&'a str>,
}

/// An uploaded certificate that passed every check, with what the API shows of it.
#[derive(Clone)]
pub struct CustomCertificate {
    pub tls_type: TlsType,
    /// Leaf first, then the chain, re-encoded as PEM.
    pub cert_pem: String,
    /// The private key as uploaded (PEM); to be encrypted before it is stored.
    pub key_pem: String,
    pub ca_pem: Option<String>,
    pub details: CertificateDetails,
}

impl std::fmt::Debug for CustomCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomCertificate")
            .field("tls_type", &self.tls_type)
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

/// The leaf certificate's identity and validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateDetails {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of the subject alternative names.
    pub sans: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// Why an upload was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsRejection {
    pub code: &'static str,
    pub field: &'static str,
    pub detail: String,
}

fn reject(code: &'static str, field: &'static str, detail: impl Into<String>) -> TlsRejection {
    TlsRejection {
        code,
        field,
        detail: detail.into(),
    }
}

/// Checks an upload against the rules above, as of `now`.
pub fn check(
    upload: &TlsUpload<'_>,
    now: DateTime<Utc>,
) -> Result<CustomCertificate, TlsRejection> {
    match (upload.tls_type, upload.ca_cert) {
        (TlsType::TwoWay, None) => {
            return Err(reject(
                "tls_ca_required",
                "ca_cert",
                "two-way TLS verifies client certificates: send the CA they chain to in `ca_cert`",
            ))
        }
        (TlsType::OneWay, Some(_)) => {
            return Err(reject(
                "tls_ca_not_allowed",
                "ca_cert",
                "one-way TLS does not verify client certificates: omit `ca_cert` or use two-way",
            ))
        }
        _ => {}
    }
    let chain = certificates(upload.cert, "cert")?;
    if is_encrypted(upload.key) {
        return Err(reject(
            "tls_key_encrypted",
            "key",
            "the private key is passphrase-protected; send it unencrypted (it is encrypted at rest by Skyport)",
        ));
    }
    let key = private_key(upload.key)?;
    let ca = upload
        .ca_cert
        .map(|pem| certificates(pem, "ca_cert"))
        .transpose()?;

    let parsed = chain
        .iter()
        .map(|der| {
            X509Certificate::from_der(der)
                .map(|(_, cert)| cert)
                .map_err(|e| {
                    reject(
                        "tls_not_pem",
                        "cert",
                        format!("not an X.509 certificate: {e}"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = &parsed[0];
    if leaf.version() != X509Version::V3 {
        return Err(reject(
            "tls_cert_not_v3",
            "cert",
            format!(
                "the certificate is X.509 v{}; TLS servers need v3 (extensions such as subjectAltName)",
                leaf.version().0 + 1
            ),
        ));
    }
    let not_before = timestamp(leaf.validity().not_before.timestamp());
    let not_after = timestamp(leaf.validity().not_after.timestamp());
    if now < not_before {
        return Err(reject(
            "tls_cert_not_yet_valid",
            "cert",
            format!(
                "the certificate is valid only from {}",
                not_before.to_rfc3339()
            ),
        ));
    }
    if now > not_after {
        return Err(reject(
            "tls_cert_expired",
            "cert",
            format!("the certificate expired at {}", not_after.to_rfc3339()),
        ));
    }
    if !same_public_key(leaf.public_key(), &key) {
        return Err(reject(
            "tls_key_mismatch",
            "key",
            "the private key does not belong to the certificate (its public key differs from the leaf's)",
        ));
    }
    check_chain(&parsed)?;

    let details = CertificateDetails {
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        sans: sans(leaf),
        not_before,
        not_after,
    };
    Ok(CustomCertificate {
        tls_type: upload.tls_type,
        cert_pem: to_pem(&chain),
        key_pem: upload.key.trim().to_owned() + "\n",
        ca_pem: ca.map(|ca| to_pem(&ca)),
        details,
    })
}

/// Whether the key is passphrase-protected (PKCS#8 `ENCRYPTED PRIVATE KEY` or a legacy
/// OpenSSL `Proc-Type: 4,ENCRYPTED` header).
fn is_encrypted(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || pem.contains("Proc-Type: 4,ENCRYPTED")
}

fn certificates(pem: &str, field: &'static str) -> Result<Vec<Vec<u8>>, TlsRejection> {
    let mut out = Vec::new();
    for item in rustls_pemfile::read_all(&mut pem.as_bytes()) {
        match item {
            Ok(Item::X509Certificate(der)) => out.push(der.as_ref().to_vec()),
            Ok(_) => {}
            Err(_) => {
                return Err(reject(
                    "tls_not_pem",
                    field,
                    format!("`{field}` is not valid PEM"),
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(reject(
            "tls_not_pem",
            field,
            format!("`{field}` holds no PEM `CERTIFICATE` block"),
        ));
    }
    for der in &out {
        if X509Certificate::from_der(der).is_err() {
            return Err(reject(
                "tls_not_pem",
                field,
                format!("a `CERTIFICATE` block of `{field}` is not an X.509 certificate"),
            ));
        }
    }
    Ok(out)
}

/// The key's SubjectPublicKeyInfo (DER), computed the way the broker will load it.
fn private_key(pem: &str) -> Result<Vec<u8>, TlsRejection> {
    let key =
        match rustls_pemfile::private_key(&mut pem.as_bytes()) {
            Ok(Some(key)) => key,
            _ => return Err(reject(
                "tls_not_pem",
                "key",
                "`key` holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            )),
        };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        reject(
            "tls_key_unsupported",
            "key",
            "the private key is malformed or of an unsupported type (use RSA, ECDSA P-256/P-384 or Ed25519)",
        )
    })?;
    signing
        .public_key()
        .map(|spki| spki.as_ref().to_vec())
        .ok_or_else(|| {
            reject(
                "tls_key_unsupported",
                "key",
                "the key's public half is unknown",
            )
        })
}

/// Compares algorithm and key bits (not the parameter encoding, which may differ, e.g.
/// an absent vs NULL RSA parameter).
fn same_public_key(cert: &SubjectPublicKeyInfo<'_>, key_spki: &[u8]) -> bool {
    let Ok((_, key)) = SubjectPublicKeyInfo::from_der(key_spki) else {
        return false;
    };
    cert.algorithm.algorithm == key.algorithm.algorithm
        && cert.subject_public_key.data == key.subject_public_key.data
}

fn check_chain(chain: &[X509Certificate<'_>]) -> Result<(), TlsRejection> {
    for (i, cert) in chain.iter().enumerate() {
        let self_signed = cert.issuer().as_raw() == cert.subject().as_raw();
        let last = i + 1 == chain.len();
        if self_signed || (last && i > 0) {
            continue;
        }
        let issuer_present = chain[i + 1..]
            .iter()
            .any(|c| c.subject().as_raw() == cert.issuer().as_raw());
        if !issuer_present {
            let what = if i == 0 {
                "the leaf"
            } else {
                "an intermediate"
            };
            return Err(reject(
                "tls_chain_incomplete",
                "cert",
                format!(
                    "{what} certificate is issued by `{}`, whose certificate is missing: append the intermediate certificates after the leaf",
                    cert.issuer()
                ),
            ));
        }
    }
    Ok(())
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::Ipv4Addr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::Ipv6Addr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn timestamp(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn to_pem(ders: &[Vec<u8>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for der in ders {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
