//! "Did you mean ...?" for an unknown `config.yaml` key: the known key closest to it
//! by edit distance, taken from the commented template (which lists every key).

/// The top-level keys of the template: lines `# key: ...` (nested keys are indented).
fn known_keys() -> impl Iterator<Item = &'static str> {
    super::settings::TEMPLATE.lines().filter_map(|l| {
        let rest = l.strip_prefix("# ")?;
        let (key, _) = rest.split_once(':')?;
        let ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        ok.then_some(key)
    })
}

/// Levenshtein distance between two short ASCII-ish strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key `key` most likely misspells, if one is close enough (at most a
/// third of its length, and 3, edits away).
pub(crate) fn nearest(key: &str) -> Option<&'static str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known_keys()
        .map(|k| (distance(key, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_known_key() {
        assert_eq!(nearest("max_roundz"), Some("max_rounds"));
        assert_eq!(
            nearest("inbox_wait_max_second"),
            Some("inbox_wait_max_seconds")
        );
        assert_eq!(nearest("durabilty"), Some("durability"));
        assert_eq!(nearest("something_else_entirely"), None);
        assert!(known_keys().any(|k| k == "retention"));
        assert!(
            !known_keys().any(|k| k == "audit_days"),
            "nested keys are not top-level"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("same", "same"), 0);
    }
}
