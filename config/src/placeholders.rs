//! `%x` placeholders in commands the proxy runs (`[databases.failover] rejoin_command`):
//! one expander for both validation and the run, so a command accepted at start-up is
//! the command that runs.

/// The placeholders of `rejoin_command`, for messages and documentation.
pub const REJOIN_PLACEHOLDERS: &[(char, &str)] = &[
    ('h', "host of the fenced node"),
    ('p', "port of the fenced node"),
    ('H', "host of the current primary"),
    ('P', "port of the current primary"),
    ('d', "database name"),
];

/// Why a command template cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    #[error("unknown placeholder %{0}; use {list} (%% for a literal %)", list = placeholder_list())]
    Unknown(char),
    #[error("a lone % at the end; write %% for a literal %")]
    Dangling,
}

fn placeholder_list() -> String {
    REJOIN_PLACEHOLDERS
        .iter()
        .map(|(c, _)| format!("%{c}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces each `%x` of `template` by `value(x)` (shell-quoted when it holds anything
/// but letters, digits and `._-:/@+`, so a substituted value is always one word); `%%`
/// is a literal `%`. `value` answers `None` for an unknown placeholder.
pub fn expand_placeholders(
    template: &str,
    value: impl Fn(char) -> Option<String>,
) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => return Err(PlaceholderError::Dangling),
            Some('%') => out.push('%'),
            Some(name) => {
                let v = value(name).ok_or(PlaceholderError::Unknown(name))?;
                out.push_str(&shell_word(&v));
            }
        }
    }
    Ok(out)
}

/// `v` as one `sh` word.
fn shell_word(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/@+".contains(c));
    if plain {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

/// Checks that `template` uses only the placeholders of [`REJOIN_PLACEHOLDERS`].
pub fn check_rejoin_template(template: &str) -> Result<(), PlaceholderError> {
    expand_placeholders(template, |c| {
        REJOIN_PLACEHOLDERS
            .iter()
            .any(|&(k, _)| k == c)
            .then(String::new)
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(c: char) -> Option<String> {
        match c {
            'h' => Some("db1".into()),
            'p' => Some("5432".into()),
            'd' => Some("my db's".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_quotes() {
        assert_eq!(
            expand_placeholders("rejoin %h:%p %d 100%%", lookup),
            Ok("rejoin db1:5432 'my db'\\''s' 100%".to_string())
        );
    }

    #[test]
    fn refuses_unknown_and_dangling() {
        assert_eq!(
            expand_placeholders("x %q", lookup),
            Err(PlaceholderError::Unknown('q'))
        );
        assert_eq!(
            expand_placeholders("x %", lookup),
            Err(PlaceholderError::Dangling)
        );
        assert!(check_rejoin_template("a %h %p %H %P %d").is_ok());
        let e = check_rejoin_template("a %n").unwrap_err().to_string();
        assert!(e.contains("%h %p %H %P %d"), "{e}");
    }
}
