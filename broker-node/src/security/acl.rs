//! Built-in ACL rules (`/api/v4/acl`), as EMQX 4's `emqx_auth_mnesia`.
//!
//! A rule applies to one client id, one username or every client (`$all`), and allows or
//! denies publishing, subscribing or both on a topic filter. The filter may use MQTT
//! wildcards, the placeholders `%c` (client id) and `%u` (username), or start with `eq `
//! to be compared literally (`eq #` is the filter `#` itself, not every topic).
//!
//! Rules are evaluated in the order they were added; the first rule that applies to the
//! client and matches the topic decides. Adding a rule for the same subject and topic as an
//! existing one replaces it in place (EMQX keys rules by subject and topic).
//!
//! Matching details, chosen to be safe rather than clever:
//! - a placeholder stands for exactly one topic level holding the client's value, taken
//!   literally: a client id containing `/`, `+` or `#` never widens a rule, and `%u` never
//!   matches a client without a username;
//! - wildcards in the first level do not match topics starting with `$` (MQTT 5.0 §4.7.2);
//! - a subscription is allowed only if every topic its filter can match is matched by the
//!   rule (`a/#` covers `a/b/+`; `a/b` does not cover `a/#`); `$share/{group}/` and
//!   `$queue/` prefixes are ignored.

use serde::{Deserialize, Serialize};

use super::store::Persisted;
use super::topic::{self, FilterError};
use super::{Action, ClientInfo, SecurityError, MAX_NAME_BYTES};

/// Most rules one request may add.
pub const MAX_RULES_PER_REQUEST: usize = 1_000;
/// Most rules a node keeps (every PUBLISH may scan them).
pub const MAX_RULES: usize = 10_000;

const FILE: &str = "acl.json";

/// Whom a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    ClientId(String),
    Username(String),
    All,
}

/// What a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclAction {
    #[serde(rename = "pub", alias = "publish")]
    Publish,
    #[serde(rename = "sub", alias = "subscribe")]
    Subscribe,
    #[serde(rename = "pubsub", alias = "all")]
    All,
}

impl AclAction {
    /// Parses EMQX's `pub`/`sub`/`pubsub` or `publish`/`subscribe`/`all`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pub" | "publish" => Some(Self::Publish),
            "sub" | "subscribe" => Some(Self::Subscribe),
            "pubsub" | "all" => Some(Self::All),
            _ => None,
        }
    }

    /// EMQX 4's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "pub",
            Self::Subscribe => "sub",
            Self::All => "pubsub",
        }
    }

    fn covers(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Self::All, _)
                | (Self::Publish, Action::Publish)
                | (Self::Subscribe, Action::Subscribe)
        )
    }
}

/// A rule's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Allow,
    Deny,
}

impl Access {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// Why a rule cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("the {field} must not be empty")]
    EmptySubject { field: &'static str },
    #[error("the {field} is {len} bytes long; at most {MAX_NAME_BYTES} are allowed")]
    SubjectTooLong { field: &'static str, len: usize },
    #[error("invalid topic filter {topic:?}: {source}")]
    Topic {
        topic: String,
        #[source]
        source: FilterError,
    },
}

/// Why the rule table could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("at most {MAX_RULES} ACL rules can be kept; this request would make {count}")]
    TooMany { count: usize },
    #[error("no such ACL rule")]
    NotFound,
    #[error("cannot save the ACL rules: {0}")]
    Io(#[from] std::io::Error),
}

/// One validated rule, with its topic compiled for matching.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RuleRecord", into = "RuleRecord")]
pub struct Rule {
    pub subject: Subject,
    /// The topic as given (with `eq ` and placeholders), as shown back by the API.
    pub topic: String,
    pub action: AclAction,
    pub access: Access,
    pattern: Pattern,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        (&self.subject, &self.topic, self.action, self.access)
            == (&other.subject, &other.topic, other.action, other.access)
    }
}

impl Rule {
    /// Validates and compiles a rule.
    pub fn new(
        subject: Subject,
        topic: String,
        action: AclAction,
        access: Access,
    ) -> Result<Self, RuleError> {
        match &subject {
            Subject::ClientId(name) => check_name("clientid", name)?,
            Subject::Username(name) => check_name("username", name)?,
            Subject::All => {}
        }
        let pattern = Pattern::compile(&topic).map_err(|source| RuleError::Topic {
            topic: topic.clone(),
            source,
        })?;
        Ok(Self {
            subject,
            topic,
            action,
            access,
            pattern,
        })
    }

    fn applies_to(&self, client: &ClientInfo) -> bool {
        match &self.subject {
            Subject::All => true,
            Subject::ClientId(id) => *id == client.client_id,
            Subject::Username(name) => client.username.as_deref() == Some(name.as_str()),
        }
    }
}

fn check_name(field: &'static str, name: &str) -> Result<(), RuleError> {
    if name.is_empty() {
        return Err(RuleError::EmptySubject { field });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(RuleError::SubjectTooLong {
            field,
            len: name.len(),
        });
    }
    Ok(())
}

/// A rule as written in `acl.json`.
#[derive(Serialize, Deserialize)]
struct RuleRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clientid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    topic: String,
    action: AclAction,
    access: Access,
}

impl TryFrom<RuleRecord> for Rule {
    type Error = RuleError;

    fn try_from(r: RuleRecord) -> Result<Self, RuleError> {
        let subject = match (r.clientid, r.username) {
            (Some(id), _) => Subject::ClientId(id),
            (None, Some(name)) => Subject::Username(name),
            (None, None) => Subject::All,
        };
        Rule::new(subject, r.topic, r.action, r.access)
    }
}

impl From<Rule> for RuleRecord {
    fn from(rule: Rule) -> Self {
        let (clientid, username) = match rule.subject {
            Subject::ClientId(id) => (Some(id), None),
            Subject::Username(name) => (None, Some(name)),
            Subject::All => (None, None),
        };
        Self {
            clientid,
            username,
            topic: rule.topic,
            action: rule.action,
            access: rule.access,
        }
    }
}

/// A compiled rule topic.
#[derive(Debug, Clone)]
enum Pattern {
    /// `eq <filter>`: the topic or filter must be exactly this text.
    Exact(Box<str>),
    Filter(Box<[Level]>),
}

#[derive(Debug, Clone, PartialEq)]
enum Level {
    Literal(Box<str>),
    Plus,
    Hash,
    /// A level with `%c` or `%u` in it.
    Template(Box<[Part]>),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(Box<str>),
    ClientId,
    Username,
}

impl Pattern {
    fn compile(topic: &str) -> Result<Self, FilterError> {
        if let Some(exact) = topic.strip_prefix("eq ") {
            topic::validate_filter(exact)?;
            return Ok(Self::Exact(exact.into()));
        }
        topic::validate_filter(topic)?;
        let levels = topic
            .split('/')
            .map(|level| match level {
                "+" => Level::Plus,
                "#" => Level::Hash,
                _ if level.contains("%c") || level.contains("%u") => {
                    Level::Template(template_parts(level))
                }
                _ => Level::Literal(level.into()),
            })
            .collect();
        Ok(Self::Filter(levels))
    }

    /// Whether the topic name `topic` matches.
    fn matches_name(&self, topic: &str, client: &ClientInfo) -> bool {
        match self {
            Self::Exact(text) => **text == *topic,
            Self::Filter(levels) => walk(levels, topic, client, false),
        }
    }

    /// Whether every topic the filter `filter` can match is matched.
    fn covers_filter(&self, filter: &str, client: &ClientInfo) -> bool {
        match self {
            Self::Exact(text) => **text == *filter,
            Self::Filter(levels) => walk(levels, filter, client, true),
        }
    }
}

fn template_parts(level: &str) -> Box<[Part]> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = level.chars().peekable();
    while let Some(c) = chars.next() {
        let placeholder = match (c, chars.peek()) {
            ('%', Some('c')) => Some(Part::ClientId),
            ('%', Some('u')) => Some(Part::Username),
            _ => None,
        };
        match placeholder {
            Some(part) => {
                chars.next();
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text).into()));
                }
                parts.push(part);
            }
            None => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text.into()));
    }
    parts.into()
}

/// Matches `rule` levels against a topic name, or (with `is_filter`) checks that they
/// cover a topic filter. Allocation-free.
fn walk(rule: &[Level], subject: &str, client: &ClientInfo, is_filter: bool) -> bool {
    if subject.starts_with('$') && matches!(rule.first(), Some(Level::Plus | Level::Hash)) {
        return false;
    }
    let mut levels = subject.split('/');
    for level in rule {
        if *level == Level::Hash {
            return true;
        }
        let Some(given) = levels.next() else {
            return false;
        };
        if is_filter && (given == "#" || (given == "+" && *level != Level::Plus)) {
            return false;
        }
        let ok = match level {
            Level::Plus => true,
            Level::Literal(text) => **text == *given,
            Level::Template(parts) => template_matches(parts, given, client),
            Level::Hash => true,
        };
        if !ok {
            return false;
        }
    }
    levels.next().is_none()
}

fn template_matches(parts: &[Part], mut given: &str, client: &ClientInfo) -> bool {
    for part in parts {
        let text = match part {
            Part::Text(text) => &**text,
            Part::ClientId => client.client_id.as_str(),
            Part::Username => match &client.username {
                Some(name) => name.as_str(),
                None => return false,
            },
        };
        if matches!(part, Part::ClientId | Part::Username) && text.contains(['+', '#']) {
            return false;
        }
        match given.strip_prefix(text) {
            Some(rest) => given = rest,
            None => return false,
        }
    }
    given.is_empty()
}

/// The whole rule list, in evaluation order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The first matching rule's decision (`true` = allow), or `None` when no rule matches.
    pub fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> Option<bool> {
        let subject = match action {
            Action::Publish => topic,
            Action::Subscribe => topic::strip_shared(topic),
        };
        self.rules
            .iter()
            .find(|rule| {
                rule.action.covers(action)
                    && rule.applies_to(client)
                    && match action {
                        Action::Publish => rule.pattern.matches_name(subject, client),
                        Action::Subscribe => rule.pattern.covers_filter(subject, client),
                    }
            })
            .map(|rule| rule.access == Access::Allow)
    }
}

/// The node's ACL rules, persisted in `<dir>/security/acl.json`.
pub struct Acl {
    table: Persisted<RuleSet>,
}

impl Acl {
    pub fn open(dir: &std::path::Path) -> Result<Self, SecurityError> {
        Ok(Self {
            table: Persisted::open(dir, FILE)?,
        })
    }

    /// A snapshot of every rule, in evaluation order.
    pub fn snapshot(&self) -> std::sync::Arc<RuleSet> {
        arc_swap::Guard::into_inner(self.table.load())
    }

    /// The first matching rule's decision; `None` when no rule matches. Lock-free, and
    /// nearly free when there are no rules.
    pub fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> Option<bool> {
        let rules = self.table.load();
        if rules.rules.is_empty() {
            return None;
        }
        rules.check(client, action, topic)
    }

    /// Adds rules at the end, or replaces in place those with the same subject and topic.
    /// All or nothing. Blocking (file I/O).
    pub fn add(&self, new: Vec<Rule>) -> Result<(), AclError> {
        self.table.update(|set| {
            for rule in new {
                match set
                    .rules
                    .iter_mut()
                    .find(|r| r.subject == rule.subject && r.topic == rule.topic)
                {
                    Some(existing) => *existing = rule,
                    None => set.rules.push(rule),
                }
            }
            if set.rules.len() > MAX_RULES {
                return Err(AclError::TooMany {
                    count: set.rules.len(),
                });
            }
            Ok(())
        })
    }

    /// Removes the rule for `subject` and `topic`. Blocking (file I/O).
    pub fn remove(&self, subject: &Subject, topic: &str) -> Result<(), AclError> {
        self.table.update(|set| {
            let before = set.rules.len();
            set.rules
                .retain(|r| !(r.subject == *subject && r.topic == topic));
            if set.rules.len() == before {
                return Err(AclError::NotFound);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::security::test_client as client;

    fn rule(subject: Subject, topic: &str, action: AclAction, access: Access) -> Rule {
        Rule::new(subject, topic.to_owned(), action, access).unwrap()
    }

    fn set(rules: Vec<Rule>) -> RuleSet {
        RuleSet { rules }
    }

    #[test]
    fn wildcards_match_topic_names() {
        let c = client("c1", Some("u1"));
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "b", false),
            ("#", "anything/at/all", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("a//b", "a//b", true),
            ("+/+", "a/b", true),
            ("+/+", "a", false),
        ];
        for (filter, topic, expected) in cases {
            let s = set(vec![rule(
                Subject::All,
                filter,
                AclAction::All,
                Access::Allow,
            )]);
            assert_eq!(
                s.check(&c, Action::Publish, topic),
                expected.then_some(true),
                "{filter} vs {topic}"
            );
        }
    }

    #[test]
    fn subscribe_filters_must_be_covered() {
        let c = client("c1", None);
        let cases = [
            ("a/#", "a/b/+", true),
            ("a/#", "a/#", true),
            ("a/#", "a", true),
            ("a/b", "a/#", false),
            ("a/b", "a/+", false),
            ("a/+", "a/+", true),
            ("a/+", "a/b", true),
            ("a/+", "a/#", false),
            ("+/b", "+/b", true),
            ("#", "#", true),
            ("#", "$SYS/#", false),
            ("a/b", "a/b", true),
        ];
        for (filter, requested, expected) in cases {
            let s = set(vec![rule(
                Subject::All,
                filter,
                AclAction::Subscribe,
                Access::Allow,
            )]);
            assert_eq!(
                s.check(&c, Action::Subscribe, requested),
                expected.then_some(true),
                "{filter} covers {requested}"
            );
        }
        let s = set(vec![rule(
            Subject::All,
            "a/#",
            AclAction::Subscribe,
            Access::Allow,
        )]);
        assert_eq!(s.check(&c, Action::Subscribe, "$share/g/a/b"), Some(true));
        assert_eq!(s.check(&c, Action::Subscribe, "$share/g/b"), None);
        // A subscribe rule says nothing about publishing.
        assert_eq!(s.check(&c, Action::Publish, "a/b"), None);
    }

    #[test]
    fn placeholders_take_the_clients_values_literally() {
        let s = set(vec![
            rule(Subject::All, "dev/%c/#", AclAction::All, Access::Allow),
            rule(Subject::All, "user/%u-x", AclAction::Publish, Access::Allow),
        ]);
        let c = client("c1", Some("bob"));
        assert_eq!(s.check(&c, Action::Publish, "dev/c1/up"), Some(true));
        assert_eq!(s.check(&c, Action::Publish, "dev/c2/up"), None);
        assert_eq!(s.check(&c, Action::Subscribe, "dev/c1/+"), Some(true));
        assert_eq!(s.check(&c, Action::Subscribe, "dev/+/up"), None);
        assert_eq!(s.check(&c, Action::Publish, "user/bob-x"), Some(true));
        assert_eq!(s.check(&c, Action::Publish, "user/bob"), None);
        // No username: `%u` matches nothing.
        let anonymous = client("c1", None);
        assert_eq!(s.check(&anonymous, Action::Publish, "user/-x"), None);
        // A client id with wildcards or slashes does not widen the rule.
        let sneaky = client("#", None);
        assert_eq!(s.check(&sneaky, Action::Subscribe, "dev/#"), None);
        assert_eq!(s.check(&sneaky, Action::Subscribe, "dev/+/x"), None);
        let slashed = client("a/b", None);
        assert_eq!(s.check(&slashed, Action::Publish, "dev/a/b"), None);
    }

    #[test]
    fn eq_means_the_literal_filter() {
        let s = set(vec![
            rule(Subject::All, "eq #", AclAction::Subscribe, Access::Deny),
            rule(Subject::All, "eq a/%c", AclAction::Publish, Access::Allow),
            rule(Subject::All, "#", AclAction::All, Access::Allow),
        ]);
        let c = client("c1", None);
        assert_eq!(s.check(&c, Action::Subscribe, "#"), Some(false));
        assert_eq!(s.check(&c, Action::Subscribe, "$share/g/#"), Some(false));
        assert_eq!(s.check(&c, Action::Subscribe, "a/#"), Some(true));
        assert_eq!(s.check(&c, Action::Publish, "a/%c"), Some(true));
        assert!(Rule::new(
            Subject::All,
            "eq a/#/b".into(),
            AclAction::All,
            Access::Allow
        )
        .is_err());
    }

    #[test]
    fn first_applicable_rule_wins() {
        let s = set(vec![
            rule(
                Subject::ClientId("c1".into()),
                "t/#",
                AclAction::All,
                Access::Deny,
            ),
            rule(
                Subject::Username("bob".into()),
                "t/x",
                AclAction::All,
                Access::Allow,
            ),
            rule(Subject::All, "t/#", AclAction::All, Access::Allow),
        ]);
        assert_eq!(
            s.check(&client("c1", Some("bob")), Action::Publish, "t/x"),
            Some(false)
        );
        assert_eq!(
            s.check(&client("c2", Some("bob")), Action::Publish, "t/x"),
            Some(true)
        );
        assert_eq!(
            s.check(&client("c2", None), Action::Publish, "t/y"),
            Some(true)
        );
        assert_eq!(s.check(&client("c2", None), Action::Publish, "u"), None);
    }

    #[test]
    fn invalid_rules_are_refused_precisely() {
        let err =
            Rule::new(Subject::All, "a/#/b".into(), AclAction::All, Access::Allow).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid topic filter \"a/#/b\": `#` must be alone in the last level of a topic filter (found in level 2)"
        );
        let err = Rule::new(
            Subject::Username(String::new()),
            "a".into(),
            AclAction::All,
            Access::Allow,
        )
        .unwrap_err();
        assert_eq!(err, RuleError::EmptySubject { field: "username" });
    }

    #[test]
    fn actions_accept_both_vocabularies() {
        for (text, action) in [
            ("pub", AclAction::Publish),
            ("publish", AclAction::Publish),
            ("sub", AclAction::Subscribe),
            ("subscribe", AclAction::Subscribe),
            ("pubsub", AclAction::All),
            ("all", AclAction::All),
        ] {
            assert_eq!(AclAction::parse(text), Some(action));
        }
        assert_eq!(AclAction::parse("write"), None);
    }

    #[test]
    fn rules_persist_replace_in_place_and_delete() {
        let dir = std::env::temp_dir().join(format!("skyport-acl-{}", std::process::id()));
        let acl = Acl::open(&dir).unwrap();
        acl.add(vec![
            rule(
                Subject::ClientId("c".into()),
                "a",
                AclAction::All,
                Access::Allow,
            ),
            rule(Subject::All, "b", AclAction::All, Access::Allow),
        ])
        .unwrap();
        acl.add(vec![rule(
            Subject::ClientId("c".into()),
            "a",
            AclAction::Publish,
            Access::Deny,
        )])
        .unwrap();
        let reopened = Acl::open(&dir).unwrap();
        let rules = reopened.snapshot();
        assert_eq!(rules.rules.len(), 2);
        assert_eq!(rules.rules[0].access, Access::Deny);
        assert_eq!(rules.rules[1].subject, Subject::All);
        reopened.remove(&Subject::All, "b").unwrap();
        assert!(matches!(
            reopened.remove(&Subject::All, "b"),
            Err(AclError::NotFound)
        ));
        assert_eq!(Acl::open(&dir).unwrap().snapshot().rules.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
