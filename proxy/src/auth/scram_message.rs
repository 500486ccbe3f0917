//! Parsing of the two SCRAM messages a client sends (RFC 5802 section 7),
//! with PostgreSQL's restrictions.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::crypto::Key;
use super::AuthError;

/// The GS2 channel binding flag of client-first-message. `p` (channel
/// binding required) is rejected while parsing, so only these two remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gs2Flag {
    /// `n`: the client does not support channel binding.
    ClientUnsupported,
    /// `y`: the client supports channel binding but believes the server
    /// does not. True here, since the proxy offers no `-PLUS` mechanism.
    ServerUnsupported,
}

impl Gs2Flag {
    /// The `c=` value client-final-message must carry: base64 of the GS2
    /// header (`n,,` or `y,,`, never with an authorization identity).
    pub(super) fn channel_binding_attr(self) -> &'static [u8] {
        match self {
            Gs2Flag::ClientUnsupported => b"biws",
            Gs2Flag::ServerUnsupported => b"eSws",
        }
    }
}

/// The parts of client-first-message the server needs.
#[derive(Debug)]
pub(super) struct ClientFirst<'a> {
    /// The client's channel binding flag.
    pub(super) gs2_flag: Gs2Flag,
    /// client-first-message-bare: everything after the GS2 header; part of
    /// the AuthMessage.
    pub(super) bare: &'a [u8],
    /// The client nonce (printable ASCII, no comma).
    pub(super) nonce: &'a str,
}

/// The parts of client-final-message the server needs.
#[derive(Debug)]
pub(super) struct ClientFinal<'a> {
    /// The `c=` value, still base64 as PostgreSQL compares it.
    pub(super) channel_binding: &'a [u8],
    /// The `r=` value: must equal the combined nonce.
    pub(super) nonce: &'a [u8],
    /// client-final-message-without-proof; part of the AuthMessage.
    pub(super) without_proof: &'a [u8],
    /// The decoded ClientProof.
    pub(super) proof: Key,
}

/// Parses client-first-message (`<gs2 header><bare>`).
///
/// Like PostgreSQL, the `n=` user name is ignored (the startup packet's
/// user counts), an authorization identity or mandatory extension is
/// rejected, and optional extensions after the nonce are skipped.
pub(super) fn parse_client_first(message: &[u8]) -> Result<ClientFirst<'_>, AuthError> {
    let (gs2_flag, rest) = match message {
        [b'n', b',', rest @ ..] => (Gs2Flag::ClientUnsupported, rest),
        [b'y', b',', rest @ ..] => (Gs2Flag::ServerUnsupported, rest),
        [b'p', ..] => return Err(AuthError::ChannelBindingNotSupported),
        _ => return Err(malformed("expected channel binding flag n, y or p")),
    };
    let bare = match rest {
        [b',', bare @ ..] => bare,
        [b'a', b'=', ..] => return Err(AuthError::AuthorizationIdentityNotSupported),
        _ => return Err(malformed("expected ',' after channel binding flag")),
    };
    if bare.first() == Some(&b'm') {
        return Err(AuthError::UnsupportedScramExtension);
    }
    let mut fields = bare.split(|&b| b == b',');
    attr_value(fields.next(), b'n', "expected user name attribute (n=)")?;
    let nonce = attr_value(fields.next(), b'r', "expected nonce attribute (r=)")?;
    if nonce.is_empty() || !nonce.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(malformed("nonce must be non-empty printable ASCII"));
    }
    let nonce = std::str::from_utf8(nonce).map_err(|_| malformed("nonce is not ASCII"))?;
    for field in fields {
        check_extension(field)?;
    }
    Ok(ClientFirst {
        gs2_flag,
        bare,
        nonce,
    })
}

/// Parses client-final-message (`c=..,r=..[,extensions],p=..`).
pub(super) fn parse_client_final(message: &[u8]) -> Result<ClientFinal<'_>, AuthError> {
    let mut fields = message.split(|&b| b == b',');
    let channel_binding = attr_value(
        fields.next(),
        b'c',
        "expected channel binding attribute (c=)",
    )?;
    let nonce = attr_value(fields.next(), b'r', "expected nonce attribute (r=)")?;
    // Offset of the comma before the field being looked at.
    let mut comma = channel_binding.len() + nonce.len() + 5;
    loop {
        let field = fields
            .next()
            .ok_or(malformed("client-final-message has no proof (p=)"))?;
        if let Some(proof) = field.strip_prefix(b"p=") {
            if fields.next().is_some() {
                return Err(malformed("garbage after the proof in client-final-message"));
            }
            let without_proof = message
                .get(..comma)
                .ok_or(malformed("client-final-message is truncated"))?;
            return Ok(ClientFinal {
                channel_binding,
                nonce,
                without_proof,
                proof: decode_proof(proof)?,
            });
        }
        check_extension(field)?;
        comma += field.len() + 1;
    }
}

fn decode_proof(proof: &[u8]) -> Result<Key, AuthError> {
    let proof = STANDARD
        .decode(proof)
        .map_err(|_| malformed("proof is not valid base64"))?;
    Key::try_from(proof.as_slice()).map_err(|_| malformed("proof is not 32 bytes long"))
}

/// The value of a `<name>=<value>` field, or a malformed-message error.
fn attr_value<'a>(
    field: Option<&'a [u8]>,
    name: u8,
    error: &'static str,
) -> Result<&'a [u8], AuthError> {
    match field {
        Some([attr, b'=', value @ ..]) if *attr == name => Ok(value),
        _ => Err(malformed(error)),
    }
}

/// Optional extensions are ignored but must look like `<letter>=<value>`.
fn check_extension(field: &[u8]) -> Result<(), AuthError> {
    match field {
        [attr, b'=', ..] if attr.is_ascii_alphabetic() => Ok(()),
        _ => Err(malformed(
            "expected an attribute of the form <letter>=<value>",
        )),
    }
}

fn malformed(what: &'static str) -> AuthError {
    AuthError::MalformedScramMessage(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROOF: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn parses_client_first() {
        let first = parse_client_first(b"n,,n=alice,r=abc~").unwrap();
        assert_eq!(first.gs2_flag, Gs2Flag::ClientUnsupported);
        assert_eq!(first.bare, b"n=alice,r=abc~");
        assert_eq!(first.nonce, "abc~");

        let first = parse_client_first(b"y,,n=,r=xyz,x=ext").unwrap();
        assert_eq!(first.gs2_flag, Gs2Flag::ServerUnsupported);
        assert_eq!(first.nonce, "xyz");
    }

    #[test]
    fn rejects_unsupported_client_first() {
        let cases: [(&[u8], AuthError); 4] = [
            (
                b"p=tls-server-end-point,,n=,r=abc",
                AuthError::ChannelBindingNotSupported,
            ),
            (
                b"n,a=bob,n=,r=abc",
                AuthError::AuthorizationIdentityNotSupported,
            ),
            (b"n,,m=ext,n=,r=abc", AuthError::UnsupportedScramExtension),
            (
                b"y,a=bob,n=,r=abc",
                AuthError::AuthorizationIdentityNotSupported,
            ),
        ];
        for (message, error) in cases {
            assert_eq!(parse_client_first(message).unwrap_err(), error);
        }
    }

    #[test]
    fn rejects_malformed_client_first() {
        let cases: [&[u8]; 14] = [
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=,r=abc",
            b"n,x,n=,r=abc",
            b"n,,n=",
            b"n,,n=,",
            b"n,,n=,r=",
            b"n,,r=abc",
            b"n,,n=,r=a b",
            b"n,,n=,r=abc\xff",
            b"n,,n=,r=abc,",
            b"n,,n=,r=abc,1=x",
        ];
        for message in cases {
            assert!(
                matches!(
                    parse_client_first(message),
                    Err(AuthError::MalformedScramMessage(_))
                ),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn parses_client_final() {
        let message = format!("c=biws,r=nonce,x=ext,p={PROOF}");
        let last = parse_client_final(message.as_bytes()).unwrap();
        assert_eq!(last.channel_binding, b"biws");
        assert_eq!(last.nonce, b"nonce");
        assert_eq!(last.without_proof, b"c=biws,r=nonce,x=ext");
        assert_eq!(last.proof, [0u8; 32]);

        let message = format!("c=eSws,r=n,p={PROOF}");
        let last = parse_client_final(message.as_bytes()).unwrap();
        assert_eq!(last.without_proof, b"c=eSws,r=n");
    }

    #[test]
    fn rejects_malformed_client_final() {
        let cases = [
            String::new(),
            "c=biws".to_string(),
            "c=biws,r=abc".to_string(),
            "c=biws,r=abc,".to_string(),
            "r=abc,c=biws".to_string(),
            format!("c=biws,p={PROOF}"),
            format!("c=biws,r=abc,p={PROOF},x=1"),
            format!("c=biws,r=abc,p={PROOF},p={PROOF}"),
            "c=biws,r=abc,p=".to_string(),
            "c=biws,r=abc,p=AAAA".to_string(),
            "c=biws,r=abc,p=!!!!".to_string(),
            format!("c=biws,r=abc,,p={PROOF}"),
        ];
        for message in cases {
            assert!(
                matches!(
                    parse_client_final(message.as_bytes()),
                    Err(AuthError::MalformedScramMessage(_))
                ),
                "{message:?}"
            );
        }
    }
}
