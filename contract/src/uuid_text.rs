//! A uuid's text as PostgreSQL writes it (lower case, hyphenated), and the
//! spellings its `uuid` input accepts.

/// The canonical (lower-case, hyphenated) text of a uuid in any of the forms
/// Postgres' `uuid` input accepts, or None.
pub fn canonical_uuid(s: &str) -> Option<String> {
    parse_uuid(s).map(|bytes| uuid_text(&bytes))
}

/// The 16 bytes of a uuid in any of the forms Postgres' `uuid` input
/// accepts, or None.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let hex: String = inner.chars().filter(|c| *c != '-').collect();
    let hyphens_ok = match inner.len() {
        32 => !inner.contains('-'),
        36 => {
            [8, 13, 18, 23].iter().all(|&i| inner.as_bytes()[i] == b'-')
                && inner.matches('-').count() == 4
        }
        _ => false,
    };
    if !hyphens_ok || hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

/// The canonical text (lower case, hyphenated) of a uuid's 16 bytes.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_come_out_canonical() {
        let canonical = "6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10";
        for text in [
            canonical,
            "6F1C1A52-8C36-4A4E-9D55-2A4A7C1F0B10",
            "{6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10}",
            "6f1c1a528c364a4e9d552a4a7c1f0b10",
        ] {
            assert_eq!(canonical_uuid(text).as_deref(), Some(canonical), "{text}");
        }
        assert_eq!(
            uuid_text(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }
}
