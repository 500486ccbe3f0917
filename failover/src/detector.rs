//! Whether the primary is dead, with the replicas as witnesses.

use crate::topology::ShardTopology;

/// The verdict on the shard's primary after a round of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryVerdict {
    Alive,
    /// Failed checks, fewer than the threshold.
    Suspect,
    /// Failed enough checks, but these replicas still stream from a primary: the proxy is
    /// the one cut off, and must not promote.
    Partitioned {
        witnesses: Vec<usize>,
    },
    Dead,
    /// No primary is known at all.
    Unknown,
}

/// Judges the primary: dead only after `threshold` failed checks in a row AND no
/// reachable replica still streaming.
pub fn judge(t: &ShardTopology, threshold: u32) -> PrimaryVerdict {
    let Some(p) = t.primary else {
        return PrimaryVerdict::Unknown;
    };
    let primary = &t.nodes[p];
    if primary.reachable {
        return PrimaryVerdict::Alive;
    }
    if primary.failures < threshold {
        return PrimaryVerdict::Suspect;
    }
    let witnesses: Vec<usize> = (0..t.nodes.len())
        .filter(|&i| i != p && t.nodes[i].reachable && t.nodes[i].streaming)
        .collect();
    if witnesses.is_empty() {
        PrimaryVerdict::Dead
    } else {
        PrimaryVerdict::Partitioned { witnesses }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_status::NodeRole;
    use crate::probe::record;
    use crate::probe::tests::reading;

    fn shard() -> ShardTopology {
        let mut t = ShardTopology::new("p:5432", &["r1:5432".into(), "r2:5432".into()]);
        record(&mut t.nodes[0], &Ok(reading(NodeRole::Primary, 100)));
        record(&mut t.nodes[1], &Ok(reading(NodeRole::Replica, 100)));
        record(&mut t.nodes[2], &Ok(reading(NodeRole::Replica, 100)));
        t
    }

    #[test]
    fn dead_needs_the_threshold_and_no_witness() {
        let mut t = shard();
        assert_eq!(judge(&t, 3), PrimaryVerdict::Alive);
        t.nodes[0].reachable = false;
        t.nodes[0].failures = 2;
        assert_eq!(judge(&t, 3), PrimaryVerdict::Suspect);
        t.nodes[0].failures = 3;
        assert_eq!(
            judge(&t, 3),
            PrimaryVerdict::Partitioned {
                witnesses: vec![1, 2]
            }
        );
        t.nodes[1].streaming = false;
        t.nodes[2].reachable = false;
        assert_eq!(judge(&t, 3), PrimaryVerdict::Dead);
    }
}
