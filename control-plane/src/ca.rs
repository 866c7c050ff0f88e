//! Skyport's certificate authority: signs each deployment's default server certificate.
//!
//! The CA lives in the database so every control-plane replica signs with the same key.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::store::{CaRecord, Store, StoreError};

/// A server certificate chain and its private key, PEM-encoded.
pub struct IssuedCert {
    /// Leaf first, then the CA.
    pub chain_pem: String,
    pub key_pem: String,
}

/// The loaded CA, ready to sign.
pub struct Ca {
    cert_pem: String,
    cert: Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// `days` from now (negative for the past), as a certificate validity bound.
fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

impl Ca {
    /// Loads the CA from the store, creating it on first start.
    pub async fn load_or_create(store: &dyn Store) -> anyhow::Result<Self> {
        if let Some(record) = store.load_ca().await? {
            return Self::from_record(&record);
        }
        let record = Self::generate()?;
        match store.insert_ca(&record).await {
            Ok(()) => {
                tracing::info!("created Skyport CA");
                Self::from_record(&record)
            }
            // Another replica won the race; use its CA.
            Err(StoreError::Conflict(_)) => {
                let record = store
                    .load_ca()
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("CA vanished after a conflicting insert"))?;
                Self::from_record(&record)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// A throwaway CA that is never stored (for `render-manifests`).
    pub fn ephemeral() -> anyhow::Result<Self> {
        Self::from_record(&Self::generate()?)
    }

    fn generate() -> anyhow::Result<CaRecord> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Skyport CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Skyport");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = days_from_now(-1);
        params.not_after = days_from_now(3650);
        let cert = params.self_signed(&key)?;
        Ok(CaRecord {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn from_record(record: &CaRecord) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(&record.key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(&record.cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: record.cert_pem.clone(),
            cert,
            key,
        })
    }

    /// The CA certificate clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a one-year server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server_cert(&self, names: &[String]) -> anyhow::Result<IssuedCert> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "skyport".into()),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = days_from_now(-1);
        params.not_after = days_from_now(365);
        let leaf = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(IssuedCert {
            chain_pem: format!("{}{}", leaf.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
        })
    }
}
