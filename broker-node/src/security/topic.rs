//! MQTT topic filter syntax (MQTT 5.0 §4.7), as ACL rules need it: validation with errors
//! that say what is wrong and where, and the shared-subscription prefix.

/// Longest topic filter, in bytes: the MQTT UTF-8 string limit.
pub const MAX_FILTER_BYTES: usize = 65_535;

/// Why a topic filter is not valid. Levels are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("the topic filter is empty")]
    Empty,
    #[error("the topic filter is {len} bytes long; at most {MAX_FILTER_BYTES} are allowed")]
    TooLong { len: usize },
    #[error("the topic filter contains a NUL character")]
    Nul,
    #[error("`#` must be alone in the last level of a topic filter (found in level {level})")]
    MisplacedHash { level: usize },
    #[error("`+` must be alone in its level of a topic filter (found in level {level})")]
    MisplacedPlus { level: usize },
}

/// Checks that `filter` is a valid MQTT topic filter.
pub fn validate_filter(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    if filter.len() > MAX_FILTER_BYTES {
        return Err(FilterError::TooLong { len: filter.len() });
    }
    if filter.contains('\0') {
        return Err(FilterError::Nul);
    }
    let levels = filter.split('/').count();
    for (i, level) in filter.split('/').enumerate() {
        let number = i + 1;
        if level.contains('#') && (level != "#" || number != levels) {
            return Err(FilterError::MisplacedHash { level: number });
        }
        if level.contains('+') && level != "+" {
            return Err(FilterError::MisplacedPlus { level: number });
        }
    }
    Ok(())
}

/// The filter a subscription actually matches: `$share/{group}/{filter}` and
/// `$queue/{filter}` name how messages are spread, not which topics are wanted.
pub fn strip_shared(filter: &str) -> &str {
    if let Some(rest) = filter.strip_prefix("$share/") {
        return rest.split_once('/').map_or(rest, |(_, f)| f);
    }
    filter.strip_prefix("$queue/").unwrap_or(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_filters() {
        for f in [
            "a", "a/b", "#", "+", "a/+/c", "a/#", "/", "+/+", "$SYS/#", "a//b",
        ] {
            assert_eq!(validate_filter(f), Ok(()), "{f}");
        }
    }

    #[test]
    fn invalid_filters_say_why() {
        assert_eq!(validate_filter(""), Err(FilterError::Empty));
        assert_eq!(
            validate_filter("a/#/b"),
            Err(FilterError::MisplacedHash { level: 2 })
        );
        assert_eq!(
            validate_filter("a#"),
            Err(FilterError::MisplacedHash { level: 1 })
        );
        assert_eq!(
            validate_filter("a+"),
            Err(FilterError::MisplacedPlus { level: 1 })
        );
        assert_eq!(
            validate_filter("x/b+/c"),
            Err(FilterError::MisplacedPlus { level: 2 })
        );
        assert_eq!(validate_filter("a\0b"), Err(FilterError::Nul));
        let long = "a".repeat(MAX_FILTER_BYTES + 1);
        assert_eq!(
            validate_filter(&long),
            Err(FilterError::TooLong {
                len: MAX_FILTER_BYTES + 1
            })
        );
    }

    #[test]
    fn shared_prefixes_are_stripped() {
        assert_eq!(strip_shared("$share/g/a/b"), "a/b");
        assert_eq!(strip_shared("$queue/a/#"), "a/#");
        assert_eq!(strip_shared("a/b"), "a/b");
    }
}
