//! WAL positions as PostgreSQL prints them (`16/B374D848`).

use std::fmt;
use std::str::FromStr;

/// A WAL log sequence number: a byte position in the write-ahead log. Comparing two tells
/// whether a node has received or replayed what another wrote; their difference is the
/// replication lag in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Bytes from `other` up to `self`, zero when `other` is ahead.
    pub fn bytes_after(self, other: Lsn) -> u64 {
        self.0.saturating_sub(other.0)
    }
}

impl FromStr for Lsn {
    type Err = String;

    fn from_str(text: &str) -> Result<Lsn, String> {
        let bad = || format!("invalid LSN {text:?}: expected two hex numbers as in 16/B374D848");
        let (hi, lo) = text.split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_postgres_form() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", "16", "x/1", "1/", "/1", "1/2/3", "100000000/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lag_is_never_negative() {
        assert_eq!(Lsn(100).bytes_after(Lsn(40)), 60);
        assert_eq!(Lsn(40).bytes_after(Lsn(100)), 0);
    }
}
