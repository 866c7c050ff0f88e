//! The deployment's server certificate: reused from its Secret while it still fits, so
//! re-applying is idempotent and pods roll only when the certificate really changes.

use k8s_openapi::api::core::v1::Secret;
use rcgen::{CertificateParams, SanType};

use super::manifests::TlsMaterial;
use crate::ca::Ca;

/// Certificates are renewed this long before they expire.
const RENEW_BEFORE: time::Duration = time::Duration::days(30);

/// The Secret's certificate if it was issued by `ca` for exactly `names` and is not due
/// for renewal; otherwise a new one.
pub fn reuse_or_issue(
    existing: Option<&Secret>,
    names: &[String],
    ca: &Ca,
) -> anyhow::Result<TlsMaterial> {
    if let Some(material) = existing.and_then(material_of) {
        if still_fits(&material, names, ca) {
            return Ok(material);
        }
    }
    let issued = ca.issue_server_cert(names, chrono::Utc::now())?;
    Ok(TlsMaterial {
        chain_pem: issued.chain_pem,
        key_pem: issued.key_pem,
        ca_pem: ca.cert_pem().to_owned(),
    })
}

fn material_of(secret: &Secret) -> Option<TlsMaterial> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Some(TlsMaterial {
        chain_pem: text("tls.crt")?,
        key_pem: text("tls.key")?,
        ca_pem: text("ca.crt")?,
    })
}

fn still_fits(material: &TlsMaterial, names: &[String], ca: &Ca) -> bool {
    if material.ca_pem != ca.cert_pem() || !material.chain_pem.ends_with(ca.cert_pem()) {
        return false;
    }
    // The leaf is the chain's first certificate.
    let Some(end) = material.chain_pem.find("-----END CERTIFICATE-----") else {
        return false;
    };
    let leaf = &material.chain_pem[..end + "-----END CERTIFICATE-----".len()];
    let Ok(params) = CertificateParams::from_ca_cert_pem(leaf) else {
        return false;
    };
    let mut have: Vec<String> = params
        .subject_alt_names
        .iter()
        .map(|san| match san {
            SanType::DnsName(name) => name.as_str().to_owned(),
            SanType::IpAddress(ip) => ip.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    let mut want = names.to_vec();
    have.sort();
    want.sort();
    have == want && params.not_after > time::OffsetDateTime::now_utc() + RENEW_BEFORE
}
