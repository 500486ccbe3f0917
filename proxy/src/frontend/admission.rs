//! How many connections the proxy holds: each one takes a place among the logins in
//! progress (`max_logins_in_progress`) until it has logged in, then a place among the
//! clients (`max_client_connections`). A connection that finds no place is refused at
//! once, so the proxy never holds more than the two limits together, and connections
//! that never log in can only ever take the login places, never the clients'.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The places taken, and how many there are; shared by the listener and every client.
#[derive(Debug)]
pub struct Admissions {
    logins: AtomicUsize,
    clients: AtomicUsize,
    /// Connections refused at once because every login place was taken.
    refused: AtomicU64,
    max_logins: usize,
    max_clients: usize,
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
pub struct Admission {
    admissions: Arc<Admissions>,
    logged_in: bool,
}

impl Admissions {
    pub fn new(max_clients: usize, max_logins: usize) -> Arc<Admissions> {
        Arc::new(Admissions {
            logins: AtomicUsize::new(0),
            clients: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            max_logins,
            max_clients,
        })
    }

    /// A place for a new connection among the logins in progress; `None` when they
    /// are all taken.
    pub fn begin_login(self: &Arc<Self>) -> Option<Admission> {
        take(&self.logins, self.max_logins).then(|| Admission {
            admissions: self.clone(),
            logged_in: false,
        })
    }

    /// Whether every client place is taken (a login now would be refused).
    pub fn clients_full(&self) -> bool {
        self.clients() >= self.max_clients
    }

    /// Clients logged in now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Connections logging in now.
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::Acquire)
    }

    /// Counts a connection refused for want of a login place.
    pub fn note_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused for want of a login place, since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Admission {
    /// The connection has logged in: it moves to a client place. False, and it keeps
    /// its login place, when every client place is taken.
    pub fn log_in(&mut self) -> bool {
        if self.logged_in {
            return true;
        }
        let admissions = &self.admissions;
        if !take(&admissions.clients, admissions.max_clients) {
            return false;
        }
        admissions.logins.fetch_sub(1, Ordering::AcqRel);
        self.logged_in = true;
        true
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let count = if self.logged_in {
            &self.admissions.clients
        } else {
            &self.admissions.logins
        };
        count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds one to `count` unless it has reached `max`.
fn take(count: &AtomicUsize, max: usize) -> bool {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_and_clients_have_places_of_their_own() {
        let admissions = Admissions::new(2, 3);
        let logins: Vec<_> = (0..3).filter_map(|_| admissions.begin_login()).collect();
        assert_eq!(logins.len(), 3);
        assert!(
            admissions.begin_login().is_none(),
            "a fourth login in progress"
        );
        assert_eq!((admissions.logins(), admissions.clients()), (3, 0));

        let mut logins = logins.into_iter();
        let mut a = logins.next().unwrap();
        let mut b = logins.next().unwrap();
        let mut c = logins.next().unwrap();
        assert!(a.log_in() && b.log_in());
        assert!(admissions.clients_full());
        assert!(!c.log_in(), "a third client");
        assert_eq!((admissions.logins(), admissions.clients()), (1, 2));
        // Clients do not take login places: two more may log in.
        let d = admissions.begin_login();
        let e = admissions.begin_login();
        assert!(d.is_some() && e.is_some());
        assert!(admissions.begin_login().is_none());

        drop(a);
        assert!(c.log_in(), "a client left: there is room again");
        drop((b, c, d, e));
        assert_eq!((admissions.logins(), admissions.clients()), (0, 0));
    }
}
