//! A seeded, deterministic mutation fuzzer over the code that reads what a client sends
//! before and after login: framing, the startup packet, SCRAM, the extended-protocol
//! messages the proxy takes apart, and the SQL readers. Each target starts from valid
//! inputs, mutates them (bit flips, random bytes, cuts, duplicated slices, extreme length
//! words) and checks what must hold whatever the input: no panic, a clear error or a
//! consistent result, and, for SCRAM, never a login from a tampered proof.
//!
//! The seed is fixed so a failure reproduces; `PGSHARD_FUZZ_SEED` and
//! `PGSHARD_FUZZ_CASES` run other seeds and more cases.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::net::startup::{startup_packet, StartupRequest};
use crate::net::{Frame, WireError};

/// The startup packet size the fuzzer allows, PostgreSQL's.
const STARTUP_LIMIT: usize = 10_000;

/// Cases per target unless `PGSHARD_FUZZ_CASES` says otherwise.
const CASES: usize = 4_000;

fn rng(target: u64) -> StdRng {
    let seed = std::env::var("PGSHARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0fc0_ffee_u64);
    StdRng::seed_from_u64(seed ^ target.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn cases() -> usize {
    std::env::var("PGSHARD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES)
}

/// One to four mutations of `input`.
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] = rng.gen();
            }
            2 if len > 0 => out.truncate(rng.gen_range(0..len)),
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                let slice = out[a..b].to_vec();
                let at = rng.gen_range(0..=len);
                out.splice(at..at, slice);
            }
            4 => {
                let at = rng.gen_range(0..=len);
                let mut bytes = vec![0u8; rng.gen_range(1..16)];
                rng.fill_bytes(&mut bytes);
                out.splice(at..at, bytes);
            }
            5 if len >= 4 => {
                // A length word made extreme.
                let at = rng.gen_range(0..=len - 4);
                let word: i32 = match rng.gen_range(0..5) {
                    0 => 0,
                    1 => -1,
                    2 => i32::MAX,
                    3 => 3,
                    _ => rng.gen_range(4..100_000),
                };
                out[at..at + 4].copy_from_slice(&word.to_be_bytes());
            }
            _ => {
                let at = rng.gen_range(0..=len);
                out.insert(at, 0);
            }
        }
    }
    out
}

/// Frames read from a byte stream, as the connection reads them: check, then parse.
fn read_frames(bytes: &[u8], chunk: usize, max_len: usize) -> (Vec<Frame>, Option<String>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match Frame::parse(&mut buf, max_len) {
                Ok(frame) => {
                    assert!(frame.len() <= max_len + 1, "a frame over the limit");
                    assert_eq!(before - buf.len(), frame.len(), "consumed its own bytes");
                    frames.push(frame);
                }
                Err(WireError::Incomplete) => {
                    assert_eq!(buf.len(), before, "an incomplete frame consumed bytes");
                    break;
                }
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    (frames, None)
}

fn seed_stream() -> Vec<u8> {
    use crate::net::messages;
    let frames = [
        messages::query("SELECT 1"),
        crate::testing::parse("s1", "SELECT $1::int"),
        crate::testing::bind("s1", &["42"]),
        crate::testing::describe(b'P', ""),
        crate::testing::execute(),
        crate::testing::sync(),
        Frame::new(b'd', b"1\tone\n2\ttwo\n"),
        Frame::new(b'c', &[]),
        Frame::new(b'X', &[]),
    ];
    frames.iter().flat_map(|f| f.as_bytes().to_vec()).collect()
}

/// Framing: whatever the bytes and however they are cut, frames come out whole, within
/// the limit, the same as when read at once, or the stream ends with an error.
#[test]
fn framing_holds_on_mutated_streams() {
    let mut rng = rng(1);
    let seed = seed_stream();
    for case in 0..cases() {
        let input = mutate(&mut rng, &seed);
        let max_len = if case % 3 == 0 { 64 } else { 1 << 20 };
        let whole = read_frames(&input, input.len(), max_len);
        let chunk = rng.gen_range(1..=17);
        let cut = read_frames(&input, chunk, max_len);
        assert_eq!(
            whole.0, cut.0,
            "case {case}: frames differ when cut in {chunk}s"
        );
        assert_eq!(whole.1.is_some(), cut.1.is_some(), "case {case}");
    }
}

/// The startup packet: a request or an error, never a panic; what is read back from a
/// valid parameter list is that list.
#[test]
fn startup_packets_hold_when_mutated() {
    let mut rng = rng(2);
    let seeds = [
        startup_packet(&[("user", "app"), ("database", "app"), ("options", "-c a=b")]).to_vec(),
        crate::net::startup::cancel_packet(7, 9).to_vec(),
        vec![0, 0, 0, 8, 4, 210, 22, 47],
    ];
    for case in 0..cases() {
        let seed = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, seed);
        let mut buf = BytesMut::from(&input[..]);
        let before = buf.len();
        match StartupRequest::parse(&mut buf, STARTUP_LIMIT) {
            Ok(StartupRequest::Startup { params, .. }) => {
                assert!(before - buf.len() <= STARTUP_LIMIT);
                assert!(params.iter().all(|(n, _)| !n.is_empty()), "case {case}");
            }
            Ok(_) => {}
            Err(WireError::Incomplete) => assert_eq!(buf.len(), before, "case {case}"),
            Err(_) => {}
        }
    }
}

/// SCRAM: a mutated client-first or client-final message is an error or a failed
/// login; a tampered proof never logs in.
#[test]
fn scram_never_accepts_a_tampered_exchange() {
    use crate::auth::{ClientSecret, ScramExchange};
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    let secret = ClientSecret::parse("correct horse").expect("a plaintext secret");
    let mut rng = rng(3);
    // Deriving keys is slow in unoptimized builds: fewer cases here.
    for case in 0..cases() / 20 {
        let mut server = ScramExchange::for_secret(&secret).expect("an exchange");
        let mut client = ScramSha256::new(b"correct horse", ChannelBinding::unsupported());
        let first = client.message().to_vec();
        let tamper_first = case % 2 == 0;
        let first = if tamper_first {
            mutate(&mut rng, &first)
        } else {
            first
        };
        let Ok(server_first) = server.server_first(&first) else {
            continue;
        };
        if client.update(&server_first).is_err() {
            continue;
        }
        let last = client.message().to_vec();
        let tampered = mutate(&mut rng, &last);
        let accepted = server.server_final(&tampered).is_ok() && server.is_authenticated();
        if accepted {
            // Only a mutation that changed nothing the proof covers may pass.
            assert!(
                tampered == last || tamper_first,
                "case {case}: a tampered client-final logged in: {:?}",
                String::from_utf8_lossy(&tampered)
            );
        }
    }
}

/// The messages the sharded session takes apart: an error or a value, never a panic.
#[test]
fn extended_messages_hold_when_mutated() {
    use crate::frontend::statements::read_parse;
    let mut rng = rng(4);
    let seeds = [
        crate::testing::parse("s1", "SELECT $1::int, $2"),
        crate::testing::bind("s1", &["42", "x"]),
        crate::testing::describe(b'S', "s1"),
        crate::testing::execute(),
    ];
    for case in 0..cases() {
        let seed = &seeds[case % seeds.len()];
        let mutated = mutate(&mut rng, seed.body());
        let frame = Frame::new(seed.tag(), &mutated);
        let _ = read_parse(&frame);
        let _ = crate::frontend::sharded::message_readers::read_bind(&frame);
        let _ = crate::frontend::sharded::message_readers::read_parse(&frame);
        let mut reader = frame.reader();
        while reader.i16().is_ok() {}
    }
}

/// The SQL readers a statement goes through before any server sees it: a result or an
/// error, never a panic, for mutated statements and bytes that are not SQL at all.
#[test]
fn sql_readers_hold_when_mutated() {
    let mut rng = rng(5);
    let seeds: [&[u8]; 6] = [
        b"SELECT id, name FROM users WHERE id = $1 ORDER BY name LIMIT 10",
        b"DECLARE c CURSOR FOR SELECT count(*)::int FROM users GROUP BY region",
        b"FETCH FORWARD 10 FROM \"c\"",
        b"/* pgshard: shard=1 */ SET search_path = 'a', b; SELECT set_config('x.y', '1', false)",
        b"COPY users (id, name) FROM STDIN WITH (FORMAT csv, HEADER, FREEZE ON)",
        b"INSERT INTO users VALUES (1, 'a'), (2, 'b') RETURNING *",
    ];
    let classifier =
        pgshard_router::Classifier::new(&[], pgshard_router::Classifier::DEFAULT_CACHE_CAPACITY);
    for case in 0..cases() / 4 {
        let bytes = mutate(&mut rng, seeds[case % seeds.len()]);
        let sql = String::from_utf8_lossy(&bytes);
        let _ = classifier.classify(&sql);
        let _ = pgshard_router::cursor_command(&sql);
        let _ = pgshard_router::session_effect(&sql);
        let _ = pgshard_router::command_count(&sql);
        let _ = pgshard_router::proxy_setting(&sql);
        let _ = pgshard_router::savepoint_command(&sql);
    }
}
