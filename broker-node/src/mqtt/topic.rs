//! Topic name and topic filter rules (MQTT 4.7).

/// Longest topic name or filter: a UTF-8 string's 65,535-byte limit.
const MAX_LEN: usize = 65_535;

/// True for a valid PUBLISH topic name: non-empty [MQTT-4.7.3-1], no
/// wildcards [MQTT-3.3.2-2], no U+0000, at most 65,535 bytes.
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= MAX_LEN && !topic.contains(['+', '#', '\0'])
}

/// True for a valid topic filter: non-empty, at most 65,535 bytes, no
/// U+0000, `#` only as the whole last level [MQTT-4.7.1-2], `+` only as a
/// whole level [MQTT-4.7.1-3]. A filter starting with `$share/` must be a
/// well-formed shared subscription (see [`parse_shared`]).
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > MAX_LEN || filter.contains('\0') {
        return false;
    }
    if filter.starts_with("$share/") {
        return match parse_shared(filter) {
            Some((_, inner)) => valid_plain_filter(inner),
            None => false,
        };
    }
    valid_plain_filter(filter)
}

fn valid_plain_filter(filter: &str) -> bool {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// True when `topic` matches the (non-shared) `filter`.
///
/// `+` matches one level, `#` any number of trailing levels including the
/// parent (`a/#` matches `a`). Topics starting with `$` are not matched by
/// filters starting with `+` or `#` [MQTT-4.7.2-1]. Strip `$share/{group}/`
/// with [`parse_shared`] first.
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match f {
            "#" => return true,
            "+" => {
                if t.next().is_none() {
                    return false;
                }
            }
            _ => {
                if t.next() != Some(f) {
                    return false;
                }
            }
        }
    }
    t.next().is_none()
}

/// Splits a shared subscription `$share/{group}/{filter}` into
/// `(group, filter)`.
///
/// `None` when the filter is not shared, or is a malformed `$share/` filter
/// (empty group, group with wildcards, or empty filter).
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix("$share/")?;
    let (group, inner) = rest.split_once('/')?;
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return None;
    }
    Some((group, inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rules() {
        assert!(valid_topic_name("a/b"));
        assert!(valid_topic_name("/"));
        assert!(!valid_topic_name("")); // [MQTT-4.7.3-1]
        assert!(!valid_topic_name("a/+")); // [MQTT-3.3.2-2]
        assert!(!valid_topic_name("a/#"));
        assert!(!valid_topic_name("a\0b"));
        assert!(valid_topic_name(&"x".repeat(65_535)));
        assert!(!valid_topic_name(&"x".repeat(65_536)));
    }

    /// [MQTT-4.7.1-1] wildcards in filters, [MQTT-4.7.1-2] `#` last and
    /// alone, [MQTT-4.7.1-3] `+` alone in its level.
    #[test]
    fn filter_rules_mqtt_4_7_1_1_2_3() {
        for ok in [
            "#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "$SYS/#", "+/#",
        ] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in [
            "", "a#", "a/#/b", "#/a", "a/b#", "a+", "a/+b/c", "++", "a\0",
        ] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }

    #[test]
    fn matching_levels() {
        assert!(matches("a/b/c", "a/b/c"));
        assert!(matches("a/b/c", "a/+/c"));
        assert!(matches("a/b/c", "a/#"));
        assert!(matches("a", "a/#"));
        assert!(matches("a/b/c", "#"));
        assert!(matches("a/", "a/+"));
        assert!(!matches("a", "a/+"));
        assert!(!matches("a/b", "a"));
        assert!(!matches("a", "a/b"));
        assert!(!matches("a/b/c", "a/+"));
        assert!(matches("/x", "+/x"));
        assert!(!matches("b/x", "a/#"));
    }

    /// [MQTT-4.7.2-1]: `$` topics are not matched by filters starting with a
    /// wildcard.
    #[test]
    fn dollar_topics_mqtt_4_7_2_1() {
        assert!(!matches("$SYS/x", "#"));
        assert!(!matches("$SYS/x", "+/x"));
        assert!(matches("$SYS/x", "$SYS/#"));
        assert!(matches("$SYS/x", "$SYS/+"));
    }

    #[test]
    fn shared_subscriptions() {
        assert_eq!(parse_shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(parse_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(parse_shared("a/b"), None);
        assert_eq!(parse_shared("$share/g"), None);
        assert_eq!(parse_shared("$share//a"), None);
        assert_eq!(parse_shared("$share/g+/a"), None);
        assert_eq!(parse_shared("$share/g/"), None);
        assert!(valid_filter("$share/g/a/+"));
        assert!(!valid_filter("$share/g"));
        assert!(!valid_filter("$share//a"));
        assert!(!valid_filter("$share/g#/a"));
        assert!(!valid_filter("$share/g/a#"));
        assert!(valid_filter("$shared/x"));
    }
}
