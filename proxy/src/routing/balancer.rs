//! Choosing one of the eligible replicas by the configured load-balancing rule.

use pgshard_config::LoadBalance;
use rand::Rng;

/// A candidate replica: its index, configured weight and sessions using it now.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub index: usize,
    pub weight: u32,
    pub active: usize,
}

/// Orders the candidates best first, so a caller can fall through to the next when the
/// first cannot be connected to. `turn` advances by one per read (round robin).
pub fn order(rule: LoadBalance, mut candidates: Vec<Candidate>, turn: u64) -> Vec<Candidate> {
    if candidates.len() < 2 {
        return candidates;
    }
    let first = match rule {
        LoadBalance::RoundRobin => weighted_slot(&candidates, turn),
        LoadBalance::Random => {
            let total: u64 = candidates.iter().map(|c| u64::from(c.weight.max(1))).sum();
            weighted_slot(&candidates, rand::thread_rng().gen_range(0..total))
        }
        LoadBalance::LeastConnections => {
            // Fewest sessions per unit of weight; ties go round robin.
            let load = |c: &Candidate| (c.active as u64 * 1_000) / u64::from(c.weight.max(1));
            let least = candidates.iter().map(load).min().unwrap_or(0);
            let tied: Vec<usize> = (0..candidates.len())
                .filter(|&i| load(&candidates[i]) == least)
                .collect();
            tied[(turn % tied.len() as u64) as usize]
        }
    };
    candidates.rotate_left(first);
    candidates
}

/// The position whose weight range holds `n` (modulo the total weight).
fn weighted_slot(candidates: &[Candidate], n: u64) -> usize {
    let total: u64 = candidates.iter().map(|c| u64::from(c.weight.max(1))).sum();
    let mut n = n % total.max(1);
    for (i, c) in candidates.iter().enumerate() {
        let w = u64::from(c.weight.max(1));
        if n < w {
            return i;
        }
        n -= w;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Candidate {
                index,
                weight,
                active: 0,
            })
            .collect()
    }

    fn firsts(rule: LoadBalance, weights: &[u32], reads: u64) -> Vec<usize> {
        let mut counts = vec![0; weights.len()];
        for turn in 0..reads {
            counts[order(rule, candidates(weights), turn)[0].index] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_follows_the_weights() {
        assert_eq!(firsts(LoadBalance::RoundRobin, &[1, 1], 10), vec![5, 5]);
        assert_eq!(firsts(LoadBalance::RoundRobin, &[1, 3], 8), vec![2, 6]);
    }

    #[test]
    fn random_spreads_by_weight() {
        let counts = firsts(LoadBalance::Random, &[1, 4], 5_000);
        assert!(counts[0] > 600 && counts[0] < 1_400, "{counts:?}");
    }

    #[test]
    fn least_connections_prefers_the_idlest() {
        let mut c = candidates(&[1, 1, 2]);
        c[0].active = 3;
        c[1].active = 1;
        c[2].active = 3;
        assert_eq!(order(LoadBalance::LeastConnections, c, 0)[0].index, 1);
    }

    #[test]
    fn every_candidate_stays_in_the_order() {
        let ordered = order(LoadBalance::RoundRobin, candidates(&[1, 1, 1]), 1);
        let mut indexes: Vec<usize> = ordered.iter().map(|c| c.index).collect();
        assert_eq!(indexes[0], 1);
        indexes.sort();
        assert_eq!(indexes, vec![0, 1, 2]);
    }
}
