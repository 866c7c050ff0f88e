//! The facade's chains: bans first, sources in order, anonymous and `no_match` last.

use super::acl::{Access, AclAction, Rule, Subject};
use super::banned::{now_secs, Ban, BanKind};
use super::settings::{AppKey, Authentication, Authorization, Decision, SecuritySettings, Source};
use super::users::UserKind;
use super::*;

fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("skyport-security-{name}-{}", std::process::id()))
}

fn client(id: &str, username: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: id.to_owned(),
        username: username.map(str::to_owned),
        peer: "192.0.2.7:5000".parse().unwrap(),
        transport: Transport::Mqtt,
        listener_port: 1883,
    }
}

fn settings(allow_anonymous: bool, no_match: Decision) -> SecuritySettings {
    SecuritySettings {
        authentication: Authentication {
            allow_anonymous,
            chain: vec![Source::BuiltIn],
        },
        authorization: Authorization {
            no_match,
            disconnect_on_deny: false,
            chain: vec![Source::BuiltIn],
        },
        ..SecuritySettings::default()
    }
}

#[tokio::test]
async fn authentication_chain_semantics() {
    let dir = temp_dir("authn");
    let security = Security::open(&dir).unwrap();
    security
        .users()
        .add(UserKind::Username, &[("bob".into(), "pw".into())])
        .unwrap();

    // Anonymous is off by default: unknown and credential-less clients are refused.
    assert_eq!(
        security.authenticate(&client("c", None), None).await,
        ConnectVerdict::BadCredentials
    );
    assert_eq!(
        security
            .authenticate(&client("c", Some("eve")), Some(b"x"))
            .await,
        ConnectVerdict::BadCredentials
    );
    assert_eq!(
        security
            .authenticate(&client("c", Some("bob")), Some(b"pw"))
            .await,
        ConnectVerdict::Allow
    );

    security.set_settings(settings(true, Decision::Allow));
    assert_eq!(
        security.authenticate(&client("c", None), None).await,
        ConnectVerdict::Allow
    );
    // A known user with a wrong password is refused even with anonymous on.
    assert_eq!(
        security
            .authenticate(&client("c", Some("bob")), Some(b"no"))
            .await,
        ConnectVerdict::BadCredentials
    );

    // Bans come first.
    let now = now_secs();
    security
        .bans()
        .add(
            Ban {
                who: "192.0.2.7".into(),
                kind: BanKind::PeerHost,
                reason: String::new(),
                by: String::new(),
                at: now,
                until: now + 60,
            },
            now,
        )
        .unwrap();
    assert_eq!(
        security
            .authenticate(&client("c", Some("bob")), Some(b"pw"))
            .await,
        ConnectVerdict::Banned
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn authorization_chain_semantics() {
    let dir = temp_dir("authz");
    let security = Security::open(&dir).unwrap();
    let c = client("c1", Some("bob"));
    // No rules: `no_match` decides.
    assert!(security.authorize(&c, Action::Publish, "a").await);
    security.set_settings(settings(false, Decision::Deny));
    assert!(!security.authorize(&c, Action::Publish, "a").await);

    security
        .acl()
        .add(vec![Rule::new(
            Subject::Username("bob".into()),
            "a/#".into(),
            AclAction::All,
            Access::Allow,
        )
        .unwrap()])
        .unwrap();
    assert!(security.authorize(&c, Action::Publish, "a/b").await);
    assert!(security.authorize(&c, Action::Subscribe, "a/+").await);
    assert!(!security.authorize(&c, Action::Subscribe, "#").await);

    // A chain without the built-in source ignores the rules.
    let mut no_builtin = settings(false, Decision::Deny);
    no_builtin.authorization.chain.clear();
    security.set_settings(no_builtin);
    assert!(!security.authorize(&c, Action::Publish, "a/b").await);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn app_keys_compare_digests() {
    let dir = temp_dir("keys");
    let security = Security::open(&dir).unwrap();
    assert_eq!(security.check_app_key("a1", "s3cret"), None);
    security.set_settings(SecuritySettings {
        app_keys: vec![
            AppKey {
                app_id: "a1".into(),
                secret_sha256: app_secret_sha256("s3cret"),
                read_only: false,
            },
            AppKey {
                app_id: "r1".into(),
                secret_sha256: app_secret_sha256("s3cret"),
                read_only: true,
            },
        ],
        ..SecuritySettings::default()
    });
    assert_eq!(
        security.check_app_key("a1", "s3cret"),
        Some(AppKeyAccess::ReadWrite)
    );
    assert_eq!(
        security.check_app_key("r1", "s3cret"),
        Some(AppKeyAccess::ReadOnly)
    );
    assert_eq!(security.check_app_key("a1", "s3cret "), None);
    assert_eq!(security.check_app_key("a2", "s3cret"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_store_fails_open() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(dir.join("security")).unwrap();
    std::fs::write(dir.join("security/users.json"), "{").unwrap();
    let err = Security::open(&dir).err().unwrap();
    assert!(err.to_string().contains("users.json is corrupt"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
