//! A client's session settings, replayed on whichever server connection serves it.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use pgshard_router::SessionEffect;

/// Startup parameters that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

/// The settings a client expects its server session to have: those from its startup
/// packet (the session defaults, which RESET returns to) and those it SET since.
///
/// In transaction pooling a client's next transaction may run on another server
/// connection; before it does, the proxy compares fingerprints and replays the settings
/// when they differ, so no client ever sees another's settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    startup: BTreeMap<String, String>,
    set: BTreeMap<String, SetValue>,
    /// The fingerprint of the two maps, kept up to date: it is compared at every
    /// checkout, the maps change rarely.
    fingerprint: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings::new(BTreeMap::new())
    }
}

/// A setting's value as the client set it, and so as it is replayed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SetValue {
    /// SQL text for `SET name = …`.
    Sql(String),
    /// A raw setting string for `set_config(name, …, false)`.
    Raw(String),
}

impl ClientSettings {
    /// From the startup parameters, including `-c name=value` / `--name=value` in `options`.
    pub fn from_startup(params: &[(String, String)]) -> Self {
        let mut startup = BTreeMap::new();
        for (name, value) in params {
            if name == "options" {
                for (n, v) in parse_options(value) {
                    startup.insert(n.to_ascii_lowercase(), quote_literal(&v));
                }
            } else if !NOT_SETTINGS.contains(&name.as_str()) {
                startup.insert(name.to_ascii_lowercase(), quote_literal(value));
            }
        }
        ClientSettings::new(startup)
    }

    fn new(startup: BTreeMap<String, String>) -> Self {
        let mut settings = ClientSettings {
            startup,
            set: BTreeMap::new(),
            fingerprint: 0,
        };
        settings.fingerprint = settings.compute_fingerprint();
        settings
    }

    fn compute_fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.startup.hash(&mut h);
        self.set.hash(&mut h);
        h.finish()
    }

    /// Applies a statement's effect once the server has confirmed it.
    pub fn apply(&mut self, effect: &SessionEffect) {
        match effect {
            SessionEffect::Set { name, value } => {
                self.set
                    .insert(name.to_ascii_lowercase(), SetValue::Sql(value.clone()));
            }
            SessionEffect::SetRaw { name, value } => {
                self.set
                    .insert(name.to_ascii_lowercase(), SetValue::Raw(value.clone()));
            }
            SessionEffect::Reset { name } => {
                self.set.remove(&name.to_ascii_lowercase());
            }
            SessionEffect::ResetAll | SessionEffect::DiscardAll => self.set.clear(),
            SessionEffect::None | SessionEffect::Pin(_) => return,
        }
        self.fingerprint = self.compute_fingerprint();
    }

    /// Whether a server that ran `effect` left some of these startup settings: RESET goes
    /// back to the values the server connection started with, which are the proxy's, not
    /// this client's.
    pub fn undone_by(&self, effect: &SessionEffect) -> bool {
        match effect {
            SessionEffect::ResetAll | SessionEffect::DiscardAll => !self.startup.is_empty(),
            SessionEffect::Reset { name } => self.startup.contains_key(&name.to_ascii_lowercase()),
            _ => false,
        }
    }

    /// Whether `name` was set by the client's startup packet.
    pub fn is_startup_setting(&self, name: &str) -> bool {
        self.startup.contains_key(&name.to_ascii_lowercase())
    }

    /// Identifies the settings; equal fingerprints need no replay.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The fingerprint of a server connection with no client settings applied.
    pub fn server_default_fingerprint() -> u64 {
        ClientSettings::default().fingerprint()
    }

    /// SQL that brings any server connection of the pool to exactly these settings.
    pub fn replay_sql(&self) -> String {
        let mut sql = String::from("RESET ALL");
        for (name, value) in &self.startup {
            if self.set.contains_key(name) {
                continue;
            }
            // A startup value is a raw setting string, as in postgresql.conf, and
            // set_config() takes it as such; SET would read a quoted list such as
            // search_path 'a,b' as one schema named "a,b".
            sql.push_str("; SELECT set_config(");
            sql.push_str(&quote_literal(name));
            sql.push_str(", ");
            sql.push_str(value);
            sql.push_str(", false)");
        }
        for (name, value) in &self.set {
            match value {
                SetValue::Sql(value) => {
                    sql.push_str("; SET ");
                    sql.push_str(&quote_name(name));
                    sql.push_str(" = ");
                    sql.push_str(value);
                }
                SetValue::Raw(value) => {
                    sql.push_str("; SELECT set_config(");
                    sql.push_str(&quote_literal(name));
                    sql.push_str(", ");
                    sql.push_str(&quote_literal(value));
                    sql.push_str(", false)");
                }
            }
        }
        sql
    }
}

/// A `SET` of a setting the server reports (DateStyle, TimeZone, client_encoding, …) is
/// remembered with the value the server reported after it, not as written: `SET DateStyle
/// TO dmy` keeps the output style the session had, and replaying the reported value gives
/// the same session anywhere.
pub fn effective_value(
    effect: SessionEffect,
    reported: &std::collections::HashMap<String, String>,
) -> SessionEffect {
    // The reported value is replayed as set_config() takes it: a list setting (DateStyle,
    // search_path) would read a quoted SET value as one element.
    let now = |name: &str| {
        reported
            .iter()
            .find(|(reported, _)| reported.eq_ignore_ascii_case(name))
            .map(|(_, now)| now.clone())
    };
    match effect {
        SessionEffect::Set { name, value } => match now(&name) {
            Some(value) => SessionEffect::SetRaw { name, value },
            None => SessionEffect::Set { name, value },
        },
        SessionEffect::SetRaw { name, value } => {
            let value = now(&name).unwrap_or(value);
            SessionEffect::SetRaw { name, value }
        }
        other => other,
    }
}

/// `-c a=b --c=d` as PostgreSQL reads the `options` startup parameter (backslash escapes
/// a space).
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n)
                }
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let setting = if w == "-c" {
            it.next()
        } else if let Some(rest) = w.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            w.strip_prefix("-c").map(str::to_string)
        };
        if let Some((n, v)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((n.replace('-', "_"), v.to_string()));
        }
    }
    out
}

pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn quote_name(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_config_is_replayed_with_set_config() {
        let mut s = ClientSettings::default();
        s.apply(&SessionEffect::SetRaw {
            name: "search_path".into(),
            value: "a, b".into(),
        });
        // set_config reads 'a, b' as two schemas, as the client's set_config did.
        assert!(
            s.replay_sql()
                .ends_with("; SELECT set_config('search_path', 'a, b', false)"),
            "{}",
            s.replay_sql()
        );
        s.apply(&SessionEffect::Reset {
            name: "search_path".into(),
        });
        assert_eq!(s.replay_sql(), "RESET ALL");
    }

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn startup_and_options() {
        let s = ClientSettings::from_startup(&params(&[
            ("user", "app"),
            ("application_name", "it's"),
            ("options", "-c search_path=a,b --statement-timeout=5s"),
        ]));
        assert_eq!(
            s.replay_sql(),
            "RESET ALL; SELECT set_config('application_name', 'it''s', false); \
             SELECT set_config('search_path', 'a,b', false); \
             SELECT set_config('statement_timeout', '5s', false)"
        );
    }

    #[test]
    fn reported_settings_are_kept_at_their_reported_value() {
        let reported: std::collections::HashMap<String, String> =
            [("DateStyle".to_string(), "Postgres, DMY".to_string())].into();
        let set = |name: &str| SessionEffect::Set {
            name: name.into(),
            value: "dmy".into(),
        };
        assert_eq!(
            effective_value(set("datestyle"), &reported),
            SessionEffect::SetRaw {
                name: "datestyle".into(),
                value: "Postgres, DMY".into()
            }
        );
        // A list reported as the server holds it (search_path is reported from
        // PostgreSQL 18 on) is replayed as a list.
        let reported: std::collections::HashMap<String, String> =
            [("search_path".to_string(), "\"$user\", public".to_string())].into();
        let listed = SessionEffect::Set {
            name: "search_path".into(),
            value: "\"$user\", public".into(),
        };
        assert_eq!(
            effective_value(listed, &reported),
            SessionEffect::SetRaw {
                name: "search_path".into(),
                value: "\"$user\", public".into()
            }
        );
        assert_eq!(effective_value(set("work_mem"), &reported), set("work_mem"));
    }

    #[test]
    fn set_and_reset_change_the_fingerprint() {
        let mut s = ClientSettings::from_startup(&params(&[("DateStyle", "ISO")]));
        let base = s.fingerprint();
        s.apply(&SessionEffect::Set {
            name: "work_mem".into(),
            value: "'8MB'".into(),
        });
        assert_ne!(s.fingerprint(), base);
        assert!(s.replay_sql().ends_with("SET work_mem = '8MB'"));
        s.apply(&SessionEffect::Set {
            name: "DateStyle".into(),
            value: "'German'".into(),
        });
        // A SET overrides the startup value instead of being replayed after it.
        assert!(!s.replay_sql().contains("set_config('datestyle'"));
        // Resetting it goes back to the startup value, which the server does not have.
        assert!(s.undone_by(&SessionEffect::Reset {
            name: "DATESTYLE".into()
        }));
        assert!(!s.undone_by(&SessionEffect::Reset {
            name: "work_mem".into()
        }));
        assert!(s.undone_by(&SessionEffect::ResetAll));
        assert!(!ClientSettings::default().undone_by(&SessionEffect::DiscardAll));
        s.apply(&SessionEffect::ResetAll);
        assert_eq!(s.fingerprint(), base);
        assert_ne!(base, ClientSettings::server_default_fingerprint());
    }
}
