//! Interoperability tests of [`ScramExchange`] against the SCRAM client of
//! `postgres-protocol` (the one tokio-postgres uses).

use std::sync::LazyLock;

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use rand::RngCore;

use super::*;

/// One plaintext secret for the tests that tamper with messages: deriving
/// verifiers is slow in unoptimized builds.
static SECRET: LazyLock<ClientSecret> =
    LazyLock::new(|| ClientSecret::parse("correct horse").unwrap());

/// Runs a whole exchange; the client checks the server signature too.
fn exchange(
    secret: &ClientSecret,
    password: &str,
    channel_binding: ChannelBinding,
) -> Result<(), AuthError> {
    let mut server = ScramExchange::for_secret(secret)?;
    let mut client = ScramSha256::new(password.as_bytes(), channel_binding);
    let server_first = server.server_first(client.message())?;
    client.update(&server_first).unwrap();
    let server_final = server.server_final(client.message())?;
    client.finish(&server_final).unwrap();
    assert!(server.is_authenticated());
    Ok(())
}

/// Runs the exchange up to the client's final message, for tampering.
fn client_final_for(password: &str) -> (ScramExchange, ScramSha256, String) {
    let mut server = ScramExchange::for_secret(&SECRET).unwrap();
    let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let server_first = server.server_first(client.message()).unwrap();
    client.update(&server_first).unwrap();
    let client_final = String::from_utf8(client.message().to_vec()).unwrap();
    (server, client, client_final)
}

#[test]
fn plaintext_secret_accepts_correct_password() {
    exchange(&SECRET, "correct horse", ChannelBinding::unsupported()).unwrap();
    // gs2 flag `y`: the client could bind but sees no -PLUS mechanism.
    exchange(&SECRET, "correct horse", ChannelBinding::unrequested()).unwrap();
}

#[test]
fn postgres_verifier_accepts_correct_password() {
    let verifier = postgres_protocol::password::scram_sha_256(b"correct horse");
    let secret = ClientSecret::parse(&verifier).unwrap();
    exchange(&secret, "correct horse", ChannelBinding::unsupported()).unwrap();
    exchange(&secret, "correct horse", ChannelBinding::unrequested()).unwrap();
}

#[test]
fn non_ascii_password_is_saslprepped_like_the_client() {
    // U+00A0 (no-break space) maps to a space; U+00AD (soft hyphen) to nothing.
    let password = "pass\u{00A0}wo\u{00AD}rd";
    let secret = ClientSecret::parse(password).unwrap();
    exchange(&secret, password, ChannelBinding::unsupported()).unwrap();
    exchange(&secret, "pass word", ChannelBinding::unsupported()).unwrap();
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let secret = ClientSecret::parse(&verifier).unwrap();
    exchange(&secret, password, ChannelBinding::unsupported()).unwrap();
}

#[test]
fn wrong_password_fails() {
    let result = exchange(&SECRET, "battery staple", ChannelBinding::unsupported());
    assert_eq!(result, Err(AuthError::PasswordMismatch));
    let verifier = postgres_protocol::password::scram_sha_256(b"correct horse");
    let secret = ClientSecret::parse(&verifier).unwrap();
    let result = exchange(&secret, "Correct horse", ChannelBinding::unsupported());
    assert_eq!(result, Err(AuthError::PasswordMismatch));
}

#[test]
fn md5_secret_cannot_do_scram() {
    let secret = ClientSecret::parse(&postgres_protocol::password::md5(b"pw", "alice")).unwrap();
    assert_eq!(
        ScramExchange::for_secret(&secret).unwrap_err(),
        AuthError::ScramWithMd5Secret
    );
}

#[test]
fn tampered_nonce_in_client_final_fails() {
    let (mut server, _, client_final) = client_final_for("correct horse");
    let tampered = client_final.replacen(",r=", ",r=x", 1);
    assert_eq!(
        server.server_final(tampered.as_bytes()),
        Err(AuthError::NonceMismatch)
    );
    assert!(!server.is_authenticated());
}

#[test]
fn tampered_nonce_in_server_first_fails() {
    // A man in the middle extends the nonce the client sees; the client's
    // final message then carries a nonce the server never issued.
    let mut server = ScramExchange::for_secret(&SECRET).unwrap();
    let mut client = ScramSha256::new(b"correct horse", ChannelBinding::unsupported());
    let server_first = server.server_first(client.message()).unwrap();
    let server_first = String::from_utf8(server_first).unwrap();
    let tampered = server_first.replacen(",s=", "X,s=", 1);
    client.update(tampered.as_bytes()).unwrap();
    assert_eq!(
        server.server_final(client.message()),
        Err(AuthError::NonceMismatch)
    );
}

#[test]
fn tampered_proof_fails() {
    let (mut server, _, client_final) = client_final_for("correct horse");
    let (head, proof) = client_final.rsplit_once(",p=").unwrap();
    let mut proof = STANDARD.decode(proof).unwrap();
    proof[0] ^= 1;
    let tampered = format!("{head},p={}", STANDARD.encode(proof));
    assert_eq!(
        server.server_final(tampered.as_bytes()),
        Err(AuthError::PasswordMismatch)
    );
}

#[test]
fn tampered_channel_binding_fails() {
    let (mut server, _, client_final) = client_final_for("correct horse");
    let tampered = client_final.replacen("c=biws", "c=eSws", 1);
    assert_eq!(
        server.server_final(tampered.as_bytes()),
        Err(AuthError::ChannelBindingMismatch)
    );
}

#[test]
fn server_first_has_postgres_shape() {
    let verifier = ScramVerifier::derive(b"pw", b"0123456789abcdef", 4096);
    let mut server = ScramExchange::new(&verifier);
    let reply = server.server_first(b"n,,n=ignored,r=clientnonce").unwrap();
    let reply = String::from_utf8(reply).unwrap();
    let rest = reply.strip_prefix("r=clientnonce").unwrap();
    let (server_nonce, rest) = rest.split_once(',').unwrap();
    assert_eq!(STANDARD.decode(server_nonce).unwrap().len(), 18);
    assert_eq!(rest, "s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096");
}

#[test]
fn every_truncated_client_first_fails_without_panic() {
    let message = b"n,,n=alice,r=abcdef";
    // Cut before the nonce starts: all must fail. Later cuts only shorten
    // the nonce, which is still a valid message.
    let nonce_start = message.len() - "abcdef".len();
    for len in 0..nonce_start {
        let mut server = ScramExchange::for_secret(&SECRET).unwrap();
        assert!(server.server_first(&message[..len]).is_err(), "len {len}");
    }
}

#[test]
fn every_truncated_client_final_fails_without_panic() {
    let (server, _, client_final) = client_final_for("correct horse");
    let bytes = client_final.as_bytes();
    for len in 0..bytes.len() {
        let mut server = server.clone();
        assert!(server.server_final(&bytes[..len]).is_err(), "len {len}");
    }
    // The untruncated message is accepted.
    server.clone().server_final(bytes).unwrap();
}

#[test]
fn garbage_messages_fail_without_panic() {
    let mut rng = rand::thread_rng();
    let (server, _, _) = client_final_for("correct horse");
    for len in 0..200 {
        let mut garbage = vec![0u8; len % 64];
        rng.fill_bytes(&mut garbage);
        let _ = ScramExchange::for_secret(&SECRET)
            .unwrap()
            .server_first(&garbage);
        assert!(server.clone().server_final(&garbage).is_err());
    }
    assert!(server
        .clone()
        .server_final(b"c=biws,r=,p=,,,===\0\xff")
        .is_err());
}

#[test]
fn steps_out_of_order_fail() {
    let verifier = ScramVerifier::from_password(b"pw");
    let mut server = ScramExchange::new(&verifier);
    assert_eq!(
        server.server_final(b"c=biws,r=x,p=AAAA"),
        Err(AuthError::ExchangeOutOfOrder)
    );
    // The failed step poisoned the exchange.
    assert_eq!(
        server.server_first(b"n,,n=,r=abc"),
        Err(AuthError::ExchangeOutOfOrder)
    );

    let mut server = ScramExchange::new(&verifier);
    server.server_first(b"n,,n=,r=abc").unwrap();
    assert_eq!(
        server.server_first(b"n,,n=,r=abc"),
        Err(AuthError::ExchangeOutOfOrder)
    );
}

#[test]
fn failed_final_cannot_be_retried() {
    let (mut server, _, client_final) = client_final_for("battery staple");
    assert_eq!(
        server.server_final(client_final.as_bytes()),
        Err(AuthError::PasswordMismatch)
    );
    assert_eq!(
        server.server_final(client_final.as_bytes()),
        Err(AuthError::ExchangeOutOfOrder)
    );
}

#[test]
fn mechanism_check() {
    ScramExchange::check_mechanism("SCRAM-SHA-256").unwrap();
    for mechanism in ["SCRAM-SHA-256-PLUS", "PLAIN", ""] {
        assert_eq!(
            ScramExchange::check_mechanism(mechanism),
            Err(AuthError::UnsupportedMechanism(mechanism.to_string()))
        );
    }
}

#[test]
fn mock_exchange_looks_real_and_always_fails() {
    let key = [7u8; 32];
    let salt_of = |user: &str| {
        let mut server = ScramExchange::mock(user, &key);
        let reply = server.server_first(b"n,,n=,r=abc").unwrap();
        let reply = String::from_utf8(reply).unwrap();
        reply.split(',').nth(1).unwrap().to_string()
    };
    assert_eq!(salt_of("ghost"), salt_of("ghost"));
    assert_ne!(salt_of("ghost"), salt_of("phantom"));
    assert_ne!(
        salt_of("ghost"),
        ScramExchange::mock("ghost", &[8u8; 32])
            .server_first(b"n,,n=,r=abc")
            .map(|m| String::from_utf8(m)
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .to_string())
            .unwrap()
    );

    for password in ["", "pw", "anything"] {
        let mut server = ScramExchange::mock("ghost", &key);
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let server_first = server.server_first(client.message()).unwrap();
        client.update(&server_first).unwrap();
        assert_eq!(
            server.server_final(client.message()),
            Err(AuthError::MockExchange)
        );
        assert!(!server.is_authenticated());
    }
}
