//! Skyport's certificate authority: signs each deployment's default server certificate
//! and the certificates of custom domains that come without one.
//!
//! The CA lives in the database so every control-plane replica signs with the same key.
//! Its private key is sealed with the operator's secret key ([`SecretKey`]), like
//! uploaded private keys; a CA stored in plaintext by an earlier version is sealed on
//! the first start that finds it.

use chrono::{DateTime, Utc};
use rand::RngCore;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use secrecy::ExposeSecret;

use crate::encryption::SecretKey;
use crate::store::{CaRecord, Store, StoreError};

/// How long a server certificate Skyport issues is valid.
pub const SERVER_CERT_DAYS: i64 = 365;
/// What the CA's key is sealed against (a sealed value cannot be moved to another row).
const KEY_CONTEXT: &str = "certificate_authority";

/// A server certificate chain and its private key, PEM-encoded.
pub struct IssuedCert {
    /// Leaf first, then the CA.
    pub chain_pem: String,
    pub key_pem: String,
    /// The leaf's serial number, upper-case hex (as `openssl x509 -serial` prints it).
    pub serial: String,
    pub not_after: DateTime<Utc>,
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

/// `days` after `now` (negative for before), as a certificate validity bound.
fn days_after(now: DateTime<Utc>, days: i64) -> time::OffsetDateTime {
    let at = now + chrono::Duration::days(days);
    time::OffsetDateTime::from_unix_timestamp(at.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

impl Ca {
    /// Loads the CA from the store, creating it on first start, and seals a key an
    /// earlier version stored in plaintext.
    pub async fn load_or_create(store: &dyn Store, secret_key: &SecretKey) -> anyhow::Result<Self> {
        if let Some(record) = store.load_ca().await? {
            return Self::from_stored(store, secret_key, &record).await;
        }
        let (record, key_pem) = Self::generate(secret_key)?;
        match store.insert_ca(&record).await {
            Ok(()) => {
                tracing::info!("created Skyport CA");
                Self::from_pem(&record.cert_pem, &key_pem)
            }
            // Another replica won the race; use its CA.
            Err(StoreError::Conflict(_)) => {
                let record = store
                    .load_ca()
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("CA vanished after a conflicting insert"))?;
                Self::from_stored(store, secret_key, &record).await
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn from_stored(
        store: &dyn Store,
        secret_key: &SecretKey,
        record: &CaRecord,
    ) -> anyhow::Result<Self> {
        if SecretKey::is_sealed(&record.key_sealed) {
            let key_pem = secret_key
                .open(&record.key_sealed, KEY_CONTEXT)
                .map_err(|e| anyhow::anyhow!("the Skyport CA's private key: {e}"))?;
            return Self::from_pem(&record.cert_pem, key_pem.expose_secret());
        }
        // Stored in plaintext by an earlier version: seal it in place. Only replaces
        // exactly what was read, so two replicas starting at once seal it once.
        let ca = Self::from_pem(&record.cert_pem, &record.key_sealed)?;
        let sealed = secret_key.seal(record.key_sealed.as_bytes(), KEY_CONTEXT);
        if store.seal_ca_key(&record.key_sealed, &sealed).await? {
            tracing::info!("sealed the Skyport CA's private key with the secret key");
        }
        Ok(ca)
    }

    /// A throwaway CA that is never stored (for `render-manifests`).
    pub fn ephemeral() -> anyhow::Result<Self> {
        let (cert, key) = Self::generate_pem()?;
        Self::from_pem(&cert, &key)
    }

    /// A new CA record (key sealed) and its key in PEM.
    fn generate(secret_key: &SecretKey) -> anyhow::Result<(CaRecord, String)> {
        let (cert_pem, key_pem) = Self::generate_pem()?;
        let record = CaRecord {
            cert_pem,
            key_sealed: secret_key.seal(key_pem.as_bytes(), KEY_CONTEXT),
        };
        Ok((record, key_pem))
    }

    fn generate_pem() -> anyhow::Result<(String, String)> {
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
        params.not_before = days_after(Utc::now(), -1);
        params.not_after = days_after(Utc::now(), 3650);
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            cert,
            key,
        })
    }

    /// The CA certificate clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), valid from a
    /// day before `now` (clock skew) for [`SERVER_CERT_DAYS`], with a random serial.
    pub fn issue_server_cert(
        &self,
        names: &[String],
        now: DateTime<Utc>,
    ) -> anyhow::Result<IssuedCert> {
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
        let mut serial = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut serial);
        // Positive, and no leading zero nibble, so the hex is what openssl prints.
        serial[0] = (serial[0] & 0x7f) | 0x10;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = days_after(now, -1);
        let not_after = days_after(now, SERVER_CERT_DAYS);
        params.not_after = not_after;
        let leaf = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(IssuedCert {
            chain_pem: format!("{}{}", leaf.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
            serial: hex::encode_upper(serial),
            not_after: DateTime::from_timestamp(not_after.unix_timestamp(), 0).unwrap_or_default(),
        })
    }
}
