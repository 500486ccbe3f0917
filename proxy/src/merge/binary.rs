//! Text values turned into PostgreSQL's binary format, for a client that asked for
//! binary results of a query the proxy had to merge (shards are asked for text, which
//! the proxy can read).

use bytes::Bytes;

use super::compare::parse_float;
use super::datetime::{bad, sort_key};
use super::error::MergeError;
use super::value_type::ValueType;

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's binary epoch.
const PG_EPOCH_MICROS: i128 = 946_684_800_000_000;
const MICROS_PER_DAY: i128 = 86_400_000_000;

/// The binary form of a non-NULL text value of type `ty`.
pub fn to_binary(ty: ValueType, text: &[u8]) -> Result<Bytes, MergeError> {
    let s = std::str::from_utf8(text).map_err(|_| bad(ty.name(), "(not UTF-8)"))?;
    let int = |s: &str| s.parse::<i64>().map_err(|_| bad(ty.name(), s));
    Ok(Bytes::from(match ty {
        ValueType::Text | ValueType::Bpchar => text.to_vec(),
        ValueType::Bool => vec![u8::from(s == "t")],
        ValueType::Int { oid: 21 } => (int(s)? as i16).to_be_bytes().to_vec(),
        ValueType::Int { oid: 23 } => (int(s)? as i32).to_be_bytes().to_vec(),
        ValueType::Int { oid: 26 } => (int(s)? as u32).to_be_bytes().to_vec(),
        ValueType::Int { .. } => int(s)?.to_be_bytes().to_vec(),
        ValueType::Float { single: true } => (parse_float(s)? as f32).to_be_bytes().to_vec(),
        ValueType::Float { single: false } => parse_float(s)?.to_be_bytes().to_vec(),
        ValueType::Uuid => uuid(s).ok_or_else(|| bad("uuid", s))?,
        ValueType::Numeric => numeric(s).ok_or_else(|| bad("numeric", s))?,
        ValueType::Date => {
            let days = match s {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                _ => {
                    let micros = sort_key(s, true, false).ok_or_else(|| bad("date", s))?;
                    ((micros - PG_EPOCH_MICROS) / MICROS_PER_DAY) as i32
                }
            };
            days.to_be_bytes().to_vec()
        }
        ValueType::Time => {
            let micros = sort_key(s, false, false).ok_or_else(|| bad("time", s))?;
            (micros as i64).to_be_bytes().to_vec()
        }
        ValueType::Timestamp | ValueType::TimestampTz => {
            let zone = ty == ValueType::TimestampTz;
            let micros = match s {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                _ => {
                    let m = sort_key(s, true, zone).ok_or_else(|| bad(ty.name(), s))?;
                    (m - PG_EPOCH_MICROS) as i64
                }
            };
            micros.to_be_bytes().to_vec()
        }
        ValueType::Interval => super::compare::interval(text)?.to_binary(),
        // json, xml: the text itself; jsonb: a version byte, then the text.
        ValueType::Other { oid: 114 | 142 } => text.to_vec(),
        ValueType::Other { oid: 3802 } => [&[1u8][..], text].concat(),
        ValueType::Other { oid: 17 } => bytea(s).ok_or_else(|| bad("bytea", s))?,
        ValueType::Other { oid: 18 } => match text {
            [] => vec![0],
            [b] => vec![*b],
            _ => {
                let octal = s
                    .strip_prefix('\\')
                    .and_then(|o| u8::from_str_radix(o, 8).ok());
                vec![octal.ok_or_else(|| bad("\"char\"", s))?]
            }
        },
        ValueType::Other { oid: 869 | 650 } => inet(s, ty).ok_or_else(|| bad("inet", s))?,
        ValueType::Other { oid: 829 | 774 } => s
            .split([':', '-'])
            .map(|pair| u8::from_str_radix(pair, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| bad("macaddr", s))?,
        ValueType::Other { oid: 1266 } => timetz(s).ok_or_else(|| bad("timetz", s))?,
        ValueType::Array { oid } => {
            super::array::to_binary(oid, s, |ty, v| to_binary(ty, v).ok().map(|b| b.to_vec()))
                .ok_or_else(|| bad("array", s))?
        }
        ValueType::Other { oid } => {
            return Err(MergeError::Unsupported(format!(
                "cannot send merged values of type OID {oid} in binary format; request \
                 text results for this query"
            )))
        }
    }))
}

/// inet and cidr: family (2 for IPv4, 3 for IPv6), prefix bits, whether cidr, address
/// length, address.
fn inet(s: &str, ty: ValueType) -> Option<Vec<u8>> {
    let (address, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let (family, bytes) = match address.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => (2u8, v4.octets().to_vec()),
        std::net::IpAddr::V6(v6) => (3u8, v6.octets().to_vec()),
    };
    let full = (bytes.len() * 8) as u8;
    let is_cidr = u8::from(ty == ValueType::Other { oid: 650 });
    let mut out = vec![family, bits.unwrap_or(full), is_cidr, bytes.len() as u8];
    out.extend_from_slice(&bytes);
    Some(out)
}

/// timetz: the local time in microseconds, then the zone in seconds west of UTC.
fn timetz(s: &str) -> Option<Vec<u8>> {
    let split = s.rfind(['+', '-'])?;
    let (clock, zone) = s.split_at(split);
    let micros = sort_key(clock, false, false)? as i64;
    let west = -zone_seconds(zone)?;
    let mut out = micros.to_be_bytes().to_vec();
    out.extend_from_slice(&west.to_be_bytes());
    Some(out)
}

/// `+05:30`, `-03`, `+01:02:03` in seconds east of UTC.
fn zone_seconds(zone: &str) -> Option<i32> {
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let mut seconds = 0i32;
    let mut unit = 3600;
    for part in rest.split(':') {
        if unit == 0 {
            return None;
        }
        seconds += part.parse::<i32>().ok()? * unit;
        unit /= 60;
    }
    Some(sign * seconds)
}

/// bytea's text, in the hex (`\\x…`) or the escape output format.
fn bytea(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        return hex
            .as_bytes()
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = std::str::from_utf8(bytes.get(i + 1..i + 4)?).ok()?;
            out.push(u8::from_str_radix(octal, 8).ok()?);
            i += 4;
        }
    }
    Some(out)
}

fn uuid(s: &str) -> Option<Vec<u8>> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    hex.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// numeric's binary form: digit count, weight, sign, display scale, base-10000 digits.
fn numeric(s: &str) -> Option<Vec<u8>> {
    let header = |sign: u16| {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(&0i16.to_be_bytes());
        v.extend_from_slice(&0i16.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&0i16.to_be_bytes());
        v
    };
    match s {
        "NaN" => return Some(header(0xC000)),
        "Infinity" => return Some(header(0xD000)),
        "-Infinity" => return Some(header(0xF000)),
        _ => {}
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let dscale = frac_part.len();
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let int_digits = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_digits = format!("{}{}", frac_part, "0".repeat(frac_pad));
    let group = |d: &str| -> Vec<i16> {
        d.as_bytes()
            .chunks(4)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    };
    let mut groups = group(&int_digits);
    let mut weight = groups.len() as i16 - 1;
    groups.extend(group(&frac_digits));
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(
        &(if negative && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend_from_slice(&(dscale as i16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(oid: u32, text: &str) -> Vec<u8> {
        to_binary(ValueType::from_oid(oid), text.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn integers_floats_and_bools() {
        assert_eq!(bin(23, "-2"), (-2i32).to_be_bytes());
        assert_eq!(bin(20, "5000000000"), 5_000_000_000i64.to_be_bytes());
        assert_eq!(bin(701, "1.5"), 1.5f64.to_be_bytes());
        assert_eq!(bin(16, "t"), [1]);
    }

    #[test]
    fn numerics_as_postgres_sends_them() {
        // SELECT '12345.678'::numeric in binary: ndigits 3, weight 1, dscale 3,
        // digits 1 2345 6780
        let expected: Vec<u8> = [3i16, 1, 0, 3, 1, 2345, 6780]
            .iter()
            .flat_map(|d| d.to_be_bytes())
            .collect();
        assert_eq!(bin(1700, "12345.678"), expected);
        let zero: Vec<u8> = [0i16, 0, 0, 2]
            .iter()
            .flat_map(|d| d.to_be_bytes())
            .collect();
        assert_eq!(bin(1700, "0.00"), zero);
        let small: Vec<u8> = [1i16, -1, 0x4000u16 as i16, 4, 5]
            .iter()
            .flat_map(|d| d.to_be_bytes())
            .collect();
        assert_eq!(bin(1700, "-0.0005"), small);
    }

    #[test]
    fn bytea_json_jsonb_char_and_interval() {
        assert_eq!(bin(17, "\\x00ff41"), [0, 255, b'A']);
        assert_eq!(bin(17, "a\\\\b\\001"), [b'a', b'\\', b'b', 1]);
        assert_eq!(bin(114, "{\"a\": 1}"), *b"{\"a\": 1}");
        assert_eq!(bin(3802, "{\"a\": 1}"), *b"\x01{\"a\": 1}");
        assert_eq!(bin(18, "x"), [b'x']);
        assert_eq!(bin(18, "\\377"), [255]);
        assert_eq!(
            bin(1186, "1 mon 2 days 00:00:01"),
            [
                &1_000_000i64.to_be_bytes()[..],
                &2i32.to_be_bytes(),
                &1i32.to_be_bytes()
            ]
            .concat()
        );
        assert!(to_binary(ValueType::from_oid(17), b"\\x0").is_err());
        // inet '10.0.1.5', cidr '10.0.0.0/8', inet '::1/64'
        assert_eq!(bin(869, "10.0.1.5"), [2, 32, 0, 4, 10, 0, 1, 5]);
        assert_eq!(bin(650, "10.0.0.0/8"), [2, 8, 1, 4, 10, 0, 0, 0]);
        assert_eq!(bin(869, "::1/64")[..4], [3, 64, 0, 16]);
        assert_eq!(bin(829, "08:00:2b:01:02:03"), [8, 0, 0x2b, 1, 2, 3]);
        // timetz '00:00:01+01': one second, zone 3600 seconds east.
        assert_eq!(
            bin(1266, "00:00:01+01"),
            [&1_000_000i64.to_be_bytes()[..], &(-3600i32).to_be_bytes()].concat()
        );
        assert_eq!(bin(1266, "00:00:00-05:30")[8..], 19_800i32.to_be_bytes());
        assert_eq!(bin(1009, "{a,NULL}")[12..20], [0, 0, 0, 2, 0, 0, 0, 1]);
    }

    #[test]
    fn dates_and_uuids() {
        assert_eq!(bin(1082, "2000-01-02"), 1i32.to_be_bytes());
        assert_eq!(bin(1114, "2000-01-01 00:00:01"), 1_000_000i64.to_be_bytes());
        assert_eq!(bin(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")[0], 0xa0);
        assert!(to_binary(ValueType::from_oid(600), b"(1,2)").is_err());
    }
}
