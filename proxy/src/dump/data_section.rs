//! One shard's `pg_dump --data-only` script, filtered into its part of the merged dump.
//!
//! A data-only script holds a preamble (SET statements), then entries, each opened by a
//! comment block pg_dump writes as `--`, `-- Data for Name: t; Type: TABLE DATA; …`,
//! `--`: a table's `COPY … FROM stdin;` with its rows up to `\.`, or a sequence's
//! `SELECT pg_catalog.setval(…);`. It holds no DDL, so no function body or comment can
//! pass for an entry. Each COPY is planned as the proxy will plan it at restore:
//!
//! - a sharded table's rows are kept from every shard (each restored row goes to the
//!   shard its key names then);
//! - a replicated table's rows are kept from shard 0 only, and every shard's rows are
//!   fingerprinted, so that a replicated table that differs between shards is reported
//!   rather than restored from one of them;
//! - rows of a table the proxy could not place are refused, with the proxy's reason;
//!   such a table without rows is left out (it has nothing to restore).
//!
//! Sequence values are collected, not written: the merge sets every copy to the value
//! furthest along.

use std::collections::BTreeMap;

use pgshard_router::plan::{PlanInput, Planner, ResultMerge};

use super::error::DumpError;
use super::fingerprint::Fingerprint;
use super::sequence_set::SequenceSet;

/// How a restore through pgshard places a table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Each row on the shard of its key.
    Sharded,
    /// Every row on every shard.
    Replicated,
    /// Nowhere: the proxy refuses the COPY, for this reason.
    Refused(String),
}

/// What one shard's data section held of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableData {
    pub placement: Placement,
    /// Its rows on this shard (also those left out of the script).
    pub fingerprint: Fingerprint,
}

/// Where the filter is in the script.
enum State {
    /// Preamble, trailer and comments: written as they are.
    Free,
    /// A TABLE DATA entry before its COPY line: its header is held.
    TableEntry,
    /// Inside a COPY block.
    Copy {
        table: String,
        placement: Placement,
        /// The entry's header and COPY line have been written.
        written: bool,
    },
    /// After a COPY block, up to the next entry: blank lines, written if the block was.
    AfterCopy { written: bool },
    /// A SEQUENCE SET entry: its header is dropped, its value collected.
    SequenceEntry,
}

/// The filter over one shard's data-only script; see the module documentation.
pub struct DataSection<'a> {
    shard: usize,
    planner: &'a Planner,
    state: State,
    /// Lines read since the last written or dropped one: a comment block that may open
    /// an entry, or an entry's header before its fate is known.
    held: Vec<u8>,
    /// The lines of a comment block being read (`--`, `-- …`, `--`).
    comment: Vec<Vec<u8>>,
    line: u64,
    /// Per table (as the COPY names it), its placement and rows.
    pub tables: BTreeMap<String, TableData>,
    pub sequences: Vec<SequenceSet>,
    /// Rows written to the script.
    pub rows_written: u64,
}

/// The line that ends a COPY block's rows.
const END_OF_COPY: &[u8] = b"\\.";

impl<'a> DataSection<'a> {
    /// A filter for shard `shard`'s script, placing tables as `planner` does.
    pub fn new(shard: usize, planner: &'a Planner) -> DataSection<'a> {
        DataSection {
            shard,
            planner,
            state: State::Free,
            held: Vec::new(),
            comment: Vec::new(),
            line: 0,
            tables: BTreeMap::new(),
            sequences: Vec::new(),
            rows_written: 0,
        }
    }

    /// Reads one line of the script (with its `\n`, except maybe the last) and appends
    /// what the merged script keeps of it to `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), DumpError> {
        self.line += 1;
        if let State::Copy { .. } = self.state {
            return self.copy_line(line, out);
        }
        let text = trim_newline(line);
        if text == b"--" && self.comment.len() != 1 {
            if self.comment.len() == 2 {
                self.comment.push(line.to_vec());
                return self.comment_block(out);
            }
            self.comment.push(line.to_vec());
            return Ok(());
        }
        if self.comment.len() == 1 && text.starts_with(b"-- ") {
            self.comment.push(line.to_vec());
            return Ok(());
        }
        // Not (or no longer) a comment block: its lines are ordinary ones.
        for held in std::mem::take(&mut self.comment) {
            self.ordinary(&held, out)?;
        }
        self.ordinary(line, out)
    }

    /// The script ended: it must not end inside an entry's rows.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), DumpError> {
        for held in std::mem::take(&mut self.comment) {
            self.ordinary(&held, out)?;
        }
        match self.state {
            State::Copy { .. } | State::TableEntry => {
                Err(self.unexpected("the script ends inside a table's data"))
            }
            _ => Ok(()),
        }
    }

    /// A complete comment block: an entry's header, or any other comment.
    fn comment_block(&mut self, out: &mut Vec<u8>) -> Result<(), DumpError> {
        let block = std::mem::take(&mut self.comment);
        let middle = block.get(1).map(Vec::as_slice).unwrap_or_default();
        let title = String::from_utf8_lossy(trim_newline(middle))
            .trim_start_matches("-- ")
            .to_string();
        let is_entry = title.starts_with("Name: ") || title.starts_with("Data for Name: ");
        let entry_type = title
            .split("; ")
            .find_map(|part| part.strip_prefix("Type: "))
            .unwrap_or("");
        self.held.clear();
        self.state = if !is_entry {
            block.iter().for_each(|l| out.extend_from_slice(l));
            State::Free
        } else if entry_type == "TABLE DATA" {
            block.iter().for_each(|l| self.held.extend_from_slice(l));
            State::TableEntry
        } else if entry_type == "SEQUENCE SET" {
            State::SequenceEntry
        } else {
            return Err(self.unexpected(&format!(
                "a {entry_type:?} entry ({title}), which pgshard dump cannot merge"
            )));
        };
        Ok(())
    }

    fn ordinary(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), DumpError> {
        let blank = trim_newline(line).is_empty();
        match &self.state {
            State::Free => out.extend_from_slice(line),
            State::TableEntry if blank => self.held.extend_from_slice(line),
            State::TableEntry => self.copy_start(line, out)?,
            State::AfterCopy { written } if blank => {
                if *written {
                    out.extend_from_slice(line);
                }
            }
            State::SequenceEntry if blank => {}
            State::SequenceEntry => {
                let set = std::str::from_utf8(line)
                    .ok()
                    .and_then(SequenceSet::parse)
                    .ok_or_else(|| self.unexpected("expected a sequence's setval"))?;
                self.sequences.push(set);
            }
            State::AfterCopy { .. } | State::Copy { .. } => {
                return Err(self.unexpected("expected the next entry after a table's data"))
            }
        }
        Ok(())
    }

    /// The `COPY table (columns) FROM stdin;` line of a TABLE DATA entry.
    fn copy_start(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), DumpError> {
        let sql = std::str::from_utf8(trim_newline(line))
            .map_err(|_| self.unexpected("a COPY statement that is not UTF-8"))?;
        let Some(table) = sql
            .strip_prefix("COPY ")
            .filter(|_| sql.ends_with(" FROM stdin;"))
            .and_then(|rest| rest.split(" (").next())
            .and_then(|name| name.split(" FROM stdin;").next())
        else {
            return Err(self.unexpected("expected COPY … FROM stdin;"));
        };
        let table = table.to_string();
        let placement = match self.planner.plan(sql, &PlanInput::default()) {
            Ok(plan) => match plan.merge {
                ResultMerge::Copy(_) => Placement::Sharded,
                ResultMerge::CopyEverywhere => Placement::Replicated,
                other => Placement::Refused(format!("the proxy would run it as {other:?}")),
            },
            Err(e) => Placement::Refused(e.to_string().trim_start_matches("pgshard: ").to_string()),
        };
        self.held.extend_from_slice(line);
        // Shard 0 writes every table it can place; the others only add rows of sharded
        // tables, once they have some.
        let written = self.shard == 0 && !matches!(placement, Placement::Refused(_));
        if written {
            out.append(&mut self.held);
        }
        self.tables.entry(table.clone()).or_insert(TableData {
            placement: placement.clone(),
            fingerprint: Fingerprint::default(),
        });
        self.state = State::Copy {
            table,
            placement,
            written,
        };
        Ok(())
    }

    fn copy_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), DumpError> {
        let State::Copy {
            table,
            placement,
            written,
        } = &mut self.state
        else {
            return Ok(());
        };
        if trim_newline(line) == END_OF_COPY {
            if *written {
                out.extend_from_slice(line);
            }
            self.held.clear();
            self.state = State::AfterCopy { written: *written };
            return Ok(());
        }
        if let Some(data) = self.tables.get_mut(table.as_str()) {
            data.fingerprint.add(line);
        }
        match placement {
            Placement::Sharded => {
                if !*written {
                    out.append(&mut self.held);
                    *written = true;
                }
                out.extend_from_slice(line);
                self.rows_written += 1;
            }
            Placement::Replicated => {
                if *written {
                    out.extend_from_slice(line);
                    self.rows_written += 1;
                }
            }
            Placement::Refused(reason) => {
                return Err(DumpError::Inexact(format!(
                    "table {table} has rows on shard {}, and a restore through pgshard could \
                     not place them: {reason}",
                    self.shard
                )))
            }
        }
        Ok(())
    }

    fn unexpected(&self, reason: &str) -> DumpError {
        DumpError::Output {
            shard: self.shard,
            line: self.line,
            reason: reason.to_string(),
        }
    }
}

/// `line` without its line end.
fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgshard_router::plan::ShardSchema;

    fn planner() -> Planner {
        let config = pgshard_config::parse(
            "[[users]]\nname = \"app\"\npassword = \"app\"\n\
             [[databases]]\nname = \"app\"\nreplicated_tables = [\"countries\"]\n\
             sharded_tables = [{ table = \"accounts\", column = \"id\" }]\n\
             [[databases.shards]]\nprimary = \"db0\"\n[[databases.shards]]\nprimary = \"db1\"\n",
            "pgshard.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Planner::new(
            ShardSchema::new(&config.databases[0]).unwrap_or_else(|e| panic!("{e}")),
            0,
        )
    }

    const PREAMBLE: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict k\n\nSET x = 1;\n\n";
    const TRAILER: &str = "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n\n";

    fn entry(table: &str, columns: &str, rows: &[&str]) -> String {
        let mut text = format!(
            "--\n-- Data for Name: {table}; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
             COPY public.{table} ({columns}) FROM stdin;\n"
        );
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        text.push_str("\\.\n\n\n");
        text
    }

    fn sequence(name: &str, value: i64) -> String {
        format!(
            "--\n-- Name: {name}; Type: SEQUENCE SET; Schema: public; Owner: app\n--\n\n\
             SELECT pg_catalog.setval('public.{name}', {value}, true);\n\n\n"
        )
    }

    /// Feeds `script` to shard `shard`'s filter; what it wrote, and the filter.
    fn filter<'p>(planner: &'p Planner, shard: usize, script: &str) -> (String, DataSection<'p>) {
        let mut section = DataSection::new(shard, planner);
        let mut out = Vec::new();
        for line in script.split_inclusive('\n') {
            section
                .line(line.as_bytes(), &mut out)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        section.finish(&mut out).unwrap_or_else(|e| panic!("{e}"));
        (String::from_utf8_lossy(&out).into_owned(), section)
    }

    fn failure(planner: &Planner, shard: usize, script: &str) -> String {
        let mut section = DataSection::new(shard, planner);
        let mut out = Vec::new();
        for line in script.split_inclusive('\n') {
            if let Err(e) = section.line(line.as_bytes(), &mut out) {
                return e.to_string();
            }
        }
        match section.finish(&mut out) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("no error in {script}"),
        }
    }

    #[test]
    fn shard_zero_keeps_what_the_proxy_places_and_sets_sequences_aside() {
        let planner = planner();
        let accounts = entry("accounts", "id, name", &["1\t--", "2\t\\\\.", "3\t\\N"]);
        let countries = entry("countries", "code", &["de"]);
        let empty_unknown = entry("audit", "id", &[]);
        let script = format!(
            "{PREAMBLE}{accounts}{countries}{empty_unknown}{}{TRAILER}",
            sequence("accounts_id_seq", 7)
        );
        let (out, section) = filter(&planner, 0, &script);
        assert_eq!(out, format!("{PREAMBLE}{accounts}{countries}{TRAILER}"));
        assert_eq!(section.rows_written, 4);
        assert_eq!(
            section.tables["public.accounts"].placement,
            Placement::Sharded
        );
        assert_eq!(
            section.tables["public.countries"].placement,
            Placement::Replicated
        );
        assert!(matches!(
            section.tables["public.audit"].placement,
            Placement::Refused(_)
        ));
        assert_eq!(section.sequences.len(), 1);
        assert_eq!(section.sequences[0].value, 7);
    }

    #[test]
    fn other_shards_add_only_rows_of_sharded_tables() {
        let planner = planner();
        let accounts = entry("accounts", "id, name", &["4\tfour"]);
        let empty = entry("accounts", "id, name", &[]);
        let countries = entry("countries", "code", &["de"]);
        let script = format!("{PREAMBLE}{accounts}{countries}{TRAILER}");
        let (out, section) = filter(&planner, 1, &script);
        assert_eq!(out, format!("{PREAMBLE}{accounts}{TRAILER}"));
        assert_eq!(section.rows_written, 1);
        assert_eq!(section.tables["public.countries"].fingerprint.rows, 1);
        let (out, _) = filter(&planner, 1, &format!("{PREAMBLE}{empty}{TRAILER}"));
        assert_eq!(out, format!("{PREAMBLE}{TRAILER}"));
    }

    #[test]
    fn what_cannot_be_merged_is_refused() {
        let planner = planner();
        let unknown = entry("audit", "id", &["1"]);
        let message = failure(&planner, 1, &format!("{PREAMBLE}{unknown}"));
        assert!(
            message.contains("table public.audit has rows on shard 1")
                && message.contains("neither sharded nor replicated"),
            "{message}"
        );
        let blobs = "--\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\n";
        let message = failure(&planner, 0, &format!("{PREAMBLE}{blobs}"));
        assert!(message.contains("\"BLOBS\" entry"), "{message}");
        let cut = "--\n-- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: app\n--\n\nCOPY public.accounts (id) FROM stdin;\n1\n";
        let message = failure(&planner, 0, &format!("{PREAMBLE}{cut}"));
        assert!(message.contains("ends inside a table's data"), "{message}");
        let odd =
            "--\n-- Name: s; Type: SEQUENCE SET; Schema: public; Owner: app\n--\n\nSELECT 1;\n";
        let message = failure(&planner, 0, &format!("{PREAMBLE}{odd}"));
        assert!(
            message.contains("line 13") && message.contains("setval"),
            "{message}"
        );
    }
}
