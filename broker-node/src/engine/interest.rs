//! Which topics anyone is subscribed to: a trie of the router's filters, so a message
//! nobody can receive never enters the router.
//!
//! Without it, the router either scans every filter for each such message (it caches
//! only topics that matched something) or, with a catch-all filter, appends every message
//! to one more log and caches every topic ever published. The trie answers "might any
//! filter match?" in a few map lookups per topic level. It matches exactly as the router's
//! own `matches` does (`a/#` matches `a`, `+` one level, `$` not special: the node already
//! escapes `$` topics), and counts each filter once per link that holds it.

use std::collections::HashMap;

/// The filters of every subscriber link, shared groups by their inner filter.
#[derive(Debug, Default)]
pub struct Interest {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    /// Filters that end at this level.
    filters: usize,
    children: HashMap<Box<str>, Node>,
}

impl Interest {
    /// Counts one more holder of `filter` (engine form, possibly `$share/group/…`).
    pub fn add(&mut self, filter: &str) {
        let mut node = &mut self.root;
        for level in inner(filter).split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        node.filters += 1;
    }

    /// Counts one holder of `filter` fewer; forgets the filter after its last holder.
    pub fn remove(&mut self, filter: &str) {
        fn remove<'a>(node: &mut Node, mut levels: impl Iterator<Item = &'a str>) -> bool {
            match levels.next() {
                None => node.filters = node.filters.saturating_sub(1),
                Some(level) => {
                    if let Some(child) = node.children.get_mut(level) {
                        if remove(child, levels) {
                            node.children.remove(level);
                        }
                    }
                }
            }
            node.filters == 0 && node.children.is_empty()
        }
        remove(&mut self.root, inner(filter).split('/'));
    }

    /// Whether some filter matches `topic` (engine form).
    pub fn matches(&self, topic: &str) -> bool {
        fn matches<'a>(node: &Node, mut levels: impl Iterator<Item = &'a str> + Clone) -> bool {
            if node.children.contains_key("#") {
                return true;
            }
            match levels.next() {
                None => node.filters > 0,
                Some(level) => {
                    node.children
                        .get(level)
                        .is_some_and(|child| matches(child, levels.clone()))
                        || node
                            .children
                            .get("+")
                            .is_some_and(|child| matches(child, levels))
                }
            }
        }
        matches(&self.root, topic.split('/'))
    }

    /// Whether no filter is held at all.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.root.filters == 0 && self.root.children.is_empty()
    }
}

/// The topic filter of a shared subscription (`$share/group/filter`), else `filter`.
fn inner(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, inner)| inner)
}

#[cfg(test)]
mod tests {
    use super::Interest;

    /// The router's own matching decides what the trie must answer.
    fn router(topic: &str, filter: &str) -> bool {
        rumqttd::protocol::matches(topic, super::inner(filter))
    }

    #[test]
    fn agrees_with_the_router() {
        let filters = [
            "#",
            "a/#",
            "a/+",
            "+/b",
            "a/b",
            "+",
            "+/+/c",
            "a/+/#",
            "/#",
            "+/",
            "a//b",
            "$share/g~1/a/b",
            "$share/g~2/+/#",
            "\u{1}SYS/#",
        ];
        let topics = [
            "a",
            "a/b",
            "a/b/c",
            "b",
            "b/b",
            "x/y/c",
            "/",
            "/a",
            "a/",
            "a//b",
            "",
            "\u{1}SYS/x",
        ];
        for filter in filters {
            let mut interest = Interest::default();
            interest.add(filter);
            for topic in topics {
                assert_eq!(
                    interest.matches(topic),
                    router(topic, filter),
                    "topic {topic:?} filter {filter:?}"
                );
            }
        }
    }

    #[test]
    fn counts_holders_and_forgets_the_last() {
        let mut interest = Interest::default();
        assert!(!interest.matches("a/b"));
        interest.add("a/+");
        interest.add("a/+");
        interest.add("a/b/#");
        interest.remove("a/+");
        assert!(interest.matches("a/x"));
        interest.remove("a/+");
        assert!(!interest.matches("a/x"));
        assert!(interest.matches("a/b"), "a/b/# matches a/b");
        interest.remove("a/b/#");
        assert!(interest.is_empty());
        // Removing what is not held changes nothing.
        interest.remove("q/r");
        assert!(interest.is_empty());
    }
}
