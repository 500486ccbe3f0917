//! Array parameters of `key = ANY ($1)`: their elements, in text or binary format.

use crate::sharding::ParamFormat;

/// The elements of a one-dimensional array parameter (`None` elements are NULL), or
/// `None` when the array has more dimensions or is not well formed; the server then
/// judges it, and the key restricts nothing.
pub(crate) fn array_elements(format: ParamFormat, bytes: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
    match format {
        ParamFormat::Text => text_elements(std::str::from_utf8(bytes).ok()?),
        ParamFormat::Binary => binary_elements(bytes),
    }
}

/// `{1,2,"a b",NULL}`: elements split at commas, quoted ones unescaped.
fn text_elements(text: &str) -> Option<Vec<Option<Vec<u8>>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut elements = Vec::new();
    if inner.trim().is_empty() {
        return Some(elements);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = chars.next_if_eq(&'"').is_some();
        if quoted {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
        } else {
            while let Some(c) = chars.next_if(|&c| c != ',') {
                match c {
                    '{' | '}' | '"' => return None,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
            value.truncate(value.trim_end().len());
        }
        let null = !quoted && value.eq_ignore_ascii_case("null");
        elements.push((!null).then(|| value.into_bytes()));
        match chars.next() {
            None => return Some(elements),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// The binary array format: dimensions, a NULL flag, the element type, then each
/// element as a length (-1 for NULL) and its bytes.
fn binary_elements(bytes: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
    let int = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let dimensions = int(0)?;
    if dimensions == 0 {
        return Some(Vec::new());
    }
    if dimensions != 1 {
        return None;
    }
    let count = usize::try_from(int(12)?).ok()?;
    let mut at = 20;
    let mut elements = Vec::with_capacity(count.min(bytes.len() / 4));
    for _ in 0..count {
        let len = int(at)?;
        at += 4;
        if len < 0 {
            elements.push(None);
            continue;
        }
        let len = usize::try_from(len).ok()?;
        elements.push(Some(bytes.get(at..at + len)?.to_vec()));
        at += len;
    }
    (at == bytes.len()).then_some(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(array: &str) -> Option<Vec<Option<String>>> {
        text_elements(array).map(|elements| {
            elements
                .into_iter()
                .map(|e| e.map(|b| String::from_utf8(b).unwrap()))
                .collect()
        })
    }

    #[test]
    fn text_arrays() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(text("{1,2, 3 }"), Some(vec![s("1"), s("2"), s("3")]));
        assert_eq!(text("{}"), Some(vec![]));
        assert_eq!(
            text("{\"a,b\", NULL,\"NULL\",c\\,d}"),
            Some(vec![s("a,b"), None, s("NULL"), s("c,d")])
        );
        assert_eq!(text("{\"say \\\"hi\\\"\"}"), Some(vec![s("say \"hi\"")]));
        assert_eq!(text("{{1,2},{3,4}}"), None);
        assert_eq!(text("[1:2]={1,2}"), None);
        assert_eq!(text("{\"open}"), None);
    }

    #[test]
    fn binary_arrays() {
        let mut bytes = Vec::new();
        for int in [1i32, 1, 20, 3, 1] {
            bytes.extend(int.to_be_bytes());
        }
        bytes.extend(8i32.to_be_bytes());
        bytes.extend(5i64.to_be_bytes());
        bytes.extend((-1i32).to_be_bytes());
        bytes.extend(8i32.to_be_bytes());
        bytes.extend(7i64.to_be_bytes());
        assert_eq!(
            binary_elements(&bytes),
            Some(vec![
                Some(5i64.to_be_bytes().to_vec()),
                None,
                Some(7i64.to_be_bytes().to_vec())
            ])
        );
        assert_eq!(binary_elements(&bytes[..bytes.len() - 1]), None);
        assert_eq!(
            binary_elements(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20]),
            Some(vec![])
        );
    }
}
