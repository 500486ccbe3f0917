//! Parsing what an administrator typed into a command.

use super::error::AdminError;

/// One admin console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    ShowNodes,
    ShowDatabases,
    ShowPools,
    ShowClients,
    ShowServers,
    ShowLists,
    ShowVersion,
    ShowStats,
    /// `PAUSE [db]`, `RESUME [db]`, `RECONNECT [db]`: one database, or all.
    Pause(Option<String>),
    Resume(Option<String>),
    Reconnect(Option<String>),
    Disable(String),
    Enable(String),
    WaitClose(Option<String>),
    Kill(String),
    Shutdown,
    Switchover(ShardNode),
    /// `PROMOTE … FORCE`.
    ForcePromote(ShardNode),
}

/// A node of one shard of a database, as an administrator names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardNode {
    pub database: String,
    pub shard: usize,
    pub address: String,
}

/// Parses one command: keywords in any case, words separated by blanks, an optional
/// trailing semicolon, names and addresses optionally quoted.
pub fn parse(text: &str) -> Result<AdminCommand, AdminError> {
    let text = text.trim().trim_end_matches(';').trim_end();
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let keywords: Vec<&str> = upper.iter().map(String::as_str).collect();
    match keywords.as_slice() {
        ["SHOW", "NODES"] => Ok(AdminCommand::ShowNodes),
        ["SHOW", "DATABASES"] => Ok(AdminCommand::ShowDatabases),
        ["SHOW", "POOLS"] => Ok(AdminCommand::ShowPools),
        ["SHOW", "CLIENTS"] => Ok(AdminCommand::ShowClients),
        ["SHOW", "SERVERS"] => Ok(AdminCommand::ShowServers),
        ["SHOW", "LISTS"] => Ok(AdminCommand::ShowLists),
        ["SHOW", "VERSION"] => Ok(AdminCommand::ShowVersion),
        ["SHOW", "STATS"] => Ok(AdminCommand::ShowStats),
        ["PAUSE"] => Ok(AdminCommand::Pause(None)),
        ["PAUSE", _] => Ok(AdminCommand::Pause(Some(unquote(words[1]).to_string()))),
        ["RESUME"] => Ok(AdminCommand::Resume(None)),
        ["RESUME", _] => Ok(AdminCommand::Resume(Some(unquote(words[1]).to_string()))),
        ["RECONNECT"] => Ok(AdminCommand::Reconnect(None)),
        ["RECONNECT", _] => Ok(AdminCommand::Reconnect(Some(unquote(words[1]).to_string()))),
        ["DISABLE", _] => Ok(AdminCommand::Disable(unquote(words[1]).to_string())),
        ["ENABLE", _] => Ok(AdminCommand::Enable(unquote(words[1]).to_string())),
        ["DISABLE" | "ENABLE"] => Err(AdminError::Syntax(format!(
            "{} takes a database",
            keywords[0]
        ))),
        ["WAIT_CLOSE"] => Ok(AdminCommand::WaitClose(None)),
        ["WAIT_CLOSE", _] => Ok(AdminCommand::WaitClose(Some(unquote(words[1]).to_string()))),
        ["KILL", _] => Ok(AdminCommand::Kill(unquote(words[1]).to_string())),
        ["KILL"] => Err(AdminError::Syntax("KILL takes a database".into())),
        ["SHUTDOWN"] => Ok(AdminCommand::Shutdown),
        ["SWITCHOVER", ..] => match words.as_slice() {
            [_, database, shard, address] => Ok(AdminCommand::Switchover(shard_node(
                database, shard, address,
            )?)),
            _ => Err(AdminError::Syntax(
                "SWITCHOVER takes a database, a shard number and a replica address".into(),
            )),
        },
        ["PROMOTE", .., "FORCE"] if words.len() == 5 => Ok(AdminCommand::ForcePromote(shard_node(
            words[1], words[2], words[3],
        )?)),
        ["PROMOTE", ..] => Err(AdminError::Syntax(
            "PROMOTE takes a database, a shard number, a replica address and FORCE (it \
             overrides the failover safety rules, so it must be asked for)"
                .into(),
        )),
        _ => Err(AdminError::Unknown(text.to_string())),
    }
}

fn shard_node(database: &str, shard: &str, address: &str) -> Result<ShardNode, AdminError> {
    let shard = shard
        .parse()
        .map_err(|_| AdminError::Syntax(format!("shard \"{shard}\" is not a shard number")))?;
    Ok(ShardNode {
        database: unquote(database).to_string(),
        shard,
        address: unquote(address).to_string(),
    })
}

fn unquote(word: &str) -> &str {
    for quote in ['\'', '"'] {
        if let Some(inner) = word.strip_prefix(quote).and_then(|w| w.strip_suffix(quote)) {
            return inner;
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<AdminCommand> {
        super::parse(text).ok()
    }

    #[test]
    fn keywords_in_any_case_with_an_optional_semicolon() {
        assert_eq!(parse("show nodes"), Some(AdminCommand::ShowNodes));
        assert_eq!(parse("show pools;"), Some(AdminCommand::ShowPools));
        assert_eq!(parse("Show Clients"), Some(AdminCommand::ShowClients));
        assert_eq!(parse("SHOW SERVERS;"), Some(AdminCommand::ShowServers));
        assert_eq!(parse("show lists"), Some(AdminCommand::ShowLists));
        assert_eq!(parse("show version"), Some(AdminCommand::ShowVersion));
        assert_eq!(parse("show stats"), Some(AdminCommand::ShowStats));
        assert_eq!(parse("pause"), Some(AdminCommand::Pause(None)));
        assert_eq!(
            parse("PAUSE \"app\";"),
            Some(AdminCommand::Pause(Some("app".into())))
        );
        assert_eq!(
            parse("resume app"),
            Some(AdminCommand::Resume(Some("app".into())))
        );
        assert_eq!(parse("reconnect"), Some(AdminCommand::Reconnect(None)));
        assert_eq!(
            parse("disable app"),
            Some(AdminCommand::Disable("app".into()))
        );
        assert_eq!(
            parse("ENABLE app"),
            Some(AdminCommand::Enable("app".into()))
        );
        assert_eq!(parse("shutdown;"), Some(AdminCommand::Shutdown));
        assert_eq!(parse("wait_close"), Some(AdminCommand::WaitClose(None)));
        assert_eq!(parse("kill app"), Some(AdminCommand::Kill("app".into())));
        assert_eq!(parse("kill"), None);
        assert_eq!(parse("disable"), None);
        assert_eq!(
            parse(" SHOW  Databases ; "),
            Some(AdminCommand::ShowDatabases)
        );
        let node = ShardNode {
            database: "app".into(),
            shard: 0,
            address: "10.0.0.2:5432".into(),
        };
        assert_eq!(
            parse("switchover app 0 '10.0.0.2:5432';"),
            Some(AdminCommand::Switchover(node.clone()))
        );
        assert_eq!(
            parse("PROMOTE \"app\" 0 10.0.0.2:5432 force"),
            Some(AdminCommand::ForcePromote(node))
        );
    }

    #[test]
    fn mistakes_are_syntax_errors_naming_the_commands() {
        let code = |text: &str| super::parse(text).map_err(|e| (e.sqlstate(), e.to_string()));
        let (state, message) = code("SHOW MEMS").unwrap_err();
        assert_eq!(state, "42601");
        assert!(message.contains("SHOW NODES"), "{message}");
        assert!(code("PROMOTE app 0 db2:5432").is_err());
        assert!(code("SWITCHOVER app db2:5432").is_err());
        assert!(code("SWITCHOVER app x db2:5432").is_err());
        assert!(code("").is_err());
    }
}
