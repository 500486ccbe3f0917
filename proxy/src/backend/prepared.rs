//! Which shared prepared statements exist on one server connection.

use std::collections::HashMap;

/// The proxy's prepared statements present on a server, bounded: past `limit` the least
/// recently used one is closed, so a client preparing statements without end cannot grow
/// a server's memory without end.
#[derive(Debug)]
pub struct ServerStatements {
    names: HashMap<String, u64>,
    clock: u64,
    limit: usize,
}

impl ServerStatements {
    pub fn new(limit: usize) -> Self {
        ServerStatements {
            names: HashMap::new(),
            clock: 0,
            limit: limit.max(1),
        }
    }

    /// Marks a statement used; true when it exists on the server.
    pub fn touch(&mut self, name: &str) -> bool {
        self.clock += 1;
        match self.names.get_mut(name) {
            Some(used) => {
                *used = self.clock;
                true
            }
            None => false,
        }
    }

    /// Records a statement as prepared; returns the one to close to stay within the limit.
    pub fn insert(&mut self, name: &str) -> Option<String> {
        self.clock += 1;
        self.names.insert(name.to_string(), self.clock);
        if self.names.len() <= self.limit {
            return None;
        }
        let oldest = self
            .names
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .min_by_key(|(_, used)| **used)
            .map(|(n, _)| n.clone())?;
        self.names.remove(&oldest);
        Some(oldest)
    }

    pub fn remove(&mut self, name: &str) {
        self.names.remove(name);
    }

    pub fn clear(&mut self) {
        self.names.clear();
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut s = ServerStatements::new(2);
        assert_eq!(s.insert("a"), None);
        assert_eq!(s.insert("b"), None);
        assert!(s.touch("a"));
        assert_eq!(s.insert("c"), Some("b".to_string()));
        assert!(s.touch("a") && s.touch("c") && !s.touch("b"));
        assert_eq!(s.len(), 2);
    }
}
