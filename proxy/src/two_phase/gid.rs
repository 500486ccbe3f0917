//! The names (GIDs) pgshard gives the transactions it prepares.

use std::fmt;

/// What every GID of pgshard's starts with: recovery touches no prepared transaction
/// without it, so other software's two-phase commits are left alone.
pub const PREFIX: &str = "pgshard:";

/// The GID of one two-phase commit: `pgshard:<32 hex digits>:<coordinator shard>`.
///
/// The random part makes it unique across proxies and restarts without any state; the
/// coordinator shard (the participant whose own commit is the commit point, holding
/// the decision row) is in the name so that any proxy's recovery, finding the
/// transaction prepared on some shard, knows where to look for the decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gid {
    id: u128,
    coordinator: usize,
}

impl Gid {
    /// A new GID whose decision lives on shard `coordinator`.
    pub fn new(coordinator: usize) -> Gid {
        Gid {
            id: rand::random(),
            coordinator,
        }
    }

    /// The GID named `text`, if it is one of pgshard's.
    pub fn parse(text: &str) -> Option<Gid> {
        let rest = text.strip_prefix(PREFIX)?;
        let (id, coordinator) = rest.split_once(':')?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if coordinator.is_empty() || !coordinator.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Gid {
            id: u128::from_str_radix(id, 16).ok()?,
            coordinator: coordinator.parse().ok()?,
        })
    }

    /// The shard holding the decision.
    pub fn coordinator(&self) -> usize {
        self.coordinator
    }

    /// The GID as an SQL string literal; it holds only hex digits, digits, letters and
    /// colons, so it needs no escaping.
    pub fn literal(&self) -> String {
        format!("'{self}'")
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:032x}:{}", self.id, self.coordinator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gid_reads_back_as_written() {
        let gid = Gid::new(3);
        let text = gid.to_string();
        assert!(text.starts_with("pgshard:"));
        assert_eq!(text.len(), "pgshard:".len() + 32 + 2);
        assert_eq!(Gid::parse(&text), Some(gid.clone()));
        assert_eq!(gid.coordinator(), 3);
        assert_eq!(gid.literal(), format!("'{text}'"));
        assert_ne!(Gid::new(3), Gid::new(3));
    }

    #[test]
    fn other_softwares_gids_are_not_pgshards() {
        for text in [
            "",
            "pgshard:",
            "txn-42",
            "pgshard:00000000000000000000000000000001",
            "pgshard:00000000000000000000000000000001:",
            "pgshard:0000000000000000000000000000001:1",
            "pgshard:0000000000000000000000000000000g:1",
            "pgshard:00000000000000000000000000000001:-1",
            "pgshard:00000000000000000000000000000001:1:2",
            "PGSHARD:00000000000000000000000000000001:1",
            "pgshard:00000000000000000000000000000001:99999999999999999999999",
        ] {
            assert_eq!(Gid::parse(text), None, "{text:?}");
        }
        let gid = Gid::parse("pgshard:0123456789abcdefABCDEF0123456789:12");
        assert_eq!(gid.map(|g| g.coordinator()), Some(12));
    }
}
