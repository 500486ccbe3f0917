//! Logging in to a PostgreSQL server: SCRAM-SHA-256, md5, cleartext or trust.

use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::error::ServerError;
use crate::net::messages::{password, tag};
use crate::net::{Connection, Frame, ServerStream};

const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT: i32 = 3;
const AUTH_MD5: i32 = 5;
const AUTH_SASL: i32 = 10;
const AUTH_SASL_CONTINUE: i32 = 11;
const AUTH_SASL_FINAL: i32 = 12;

/// Answers the server's authentication requests until AuthenticationOk.
pub async fn authenticate(
    conn: &mut Connection<ServerStream>,
    addr: &str,
    user: &str,
    secret: Option<&str>,
) -> Result<(), ServerError> {
    let wire = |source| ServerError::Wire {
        addr: addr.to_string(),
        source,
    };
    let need_password = || {
        secret.ok_or_else(|| ServerError::NoPassword {
            addr: addr.to_string(),
            user: user.to_string(),
        })
    };
    let mut scram: Option<ScramSha256> = None;
    loop {
        let frame = conn.read_frame().await.map_err(wire)?;
        match frame.tag() {
            tag::AUTHENTICATION => {}
            tag::ERROR_RESPONSE => return Err(rejected(addr, &frame)),
            other => return Err(wire(crate::net::WireError::Unexpected(other))),
        }
        let mut r = frame.reader();
        let code = r.i32().map_err(wire)?;
        match code {
            AUTH_OK => return Ok(()),
            AUTH_CLEARTEXT => {
                let mut data = need_password()?.as_bytes().to_vec();
                data.push(0);
                conn.send(&password(&data)).await.map_err(wire)?;
            }
            AUTH_MD5 => {
                let salt = r.take(4).map_err(wire)?;
                let salt = [salt[0], salt[1], salt[2], salt[3]];
                let mut data =
                    md5_hash(user.as_bytes(), need_password()?.as_bytes(), salt).into_bytes();
                data.push(0);
                conn.send(&password(&data)).await.map_err(wire)?;
            }
            AUTH_SASL => {
                if !mechanisms(r.rest()).any(|m| m == b"SCRAM-SHA-256") {
                    return Err(ServerError::UnsupportedAuth {
                        addr: addr.to_string(),
                        what: "SASL without SCRAM-SHA-256".to_string(),
                    });
                }
                let client =
                    ScramSha256::new(need_password()?.as_bytes(), ChannelBinding::unsupported());
                let first = client.message();
                let mut data = b"SCRAM-SHA-256\0".to_vec();
                data.extend_from_slice(&(first.len() as i32).to_be_bytes());
                data.extend_from_slice(first);
                conn.send(&password(&data)).await.map_err(wire)?;
                scram = Some(client);
            }
            AUTH_SASL_CONTINUE | AUTH_SASL_FINAL => {
                let Some(client) = scram.as_mut() else {
                    return Err(wire(crate::net::WireError::Malformed(
                        "SASL message without a SASL exchange",
                    )));
                };
                let step = if code == AUTH_SASL_CONTINUE {
                    client.update(r.rest())
                } else {
                    client.finish(r.rest())
                };
                step.map_err(|e| ServerError::UnsupportedAuth {
                    addr: addr.to_string(),
                    what: format!("SCRAM exchange failed: {e}"),
                })?;
                if code == AUTH_SASL_CONTINUE {
                    conn.send(&password(client.message())).await.map_err(wire)?;
                }
            }
            other => {
                return Err(ServerError::UnsupportedAuth {
                    addr: addr.to_string(),
                    what: format!("authentication request {other}"),
                })
            }
        }
    }
}

fn mechanisms(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == 0).filter(|m| !m.is_empty())
}

pub fn rejected(addr: &str, frame: &Frame) -> ServerError {
    let (code, message) = crate::net::messages::error_fields(frame);
    ServerError::Rejected {
        addr: addr.to_string(),
        code,
        message,
    }
}
