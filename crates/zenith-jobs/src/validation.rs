//! The Validator: the exact rules every job passes before it is stored.
//!
//! The rules are Zenith's contract with the user and are kept exactly as specified:
//!
//! | field    | rule                                                                          |
//! |----------|-------------------------------------------------------------------------------|
//! | name     | 1–256 characters, ASCII letters, digits, `-`, `_`                             |
//! | path     | non-empty, ≤ 4096 bytes, no NUL byte, no `..` component                       |
//! | command  | non-empty, ≤ 65536 bytes, no NUL, none of `$(` `` ` `` `&&` `\|\|` `;` `\|` `>` `<` `..` |
//! | gpus     | 0–1024                                                                        |
//! | cpus     | 1–4096                                                                        |
//! | priority | −1000..=1000                                                                  |
//! | memory   | `<number><unit>`, e.g. `512MB`, `8GB`, `1.5GiB`: an exact, positive byte count |
//!
//! Commands are executed as argv and never through a shell; the metacharacter rule is a second line
//! of defence that also keeps job listings unambiguous.

use std::fmt;

/// Longest accepted job name, in characters.
pub const MAX_NAME_LEN: usize = 256;
/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted command line (arguments joined by one space), in bytes.
pub const MAX_COMMAND_BYTES: usize = 65536;
/// Largest accepted GPU count.
pub const MAX_GPUS: i64 = 1024;
/// Largest accepted CPU count.
pub const MAX_CPUS: i64 = 4096;
/// Lowest accepted priority.
pub const MIN_PRIORITY: i64 = -1000;
/// Highest accepted priority.
pub const MAX_PRIORITY: i64 = 1000;

/// Shell metacharacter sequences a command may not contain, most specific first so that the error
/// names the sequence the user wrote (`||` rather than `|`).
const FORBIDDEN_IN_COMMAND: &[&str] = &["$(", "`", "&&", "||", ";", "|", ">", "<", ".."];

/// A rejected input: which field, and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The field that was rejected (`name`, `path`, `command`, `gpus`, `cpus`, `priority`, `memory`).
    pub field: &'static str,
    /// The rule that was broken, in words, including the offending value where it is short.
    pub rule: String,
}

impl ValidationError {
    fn new(field: &'static str, rule: impl Into<String>) -> Self {
        Self {
            field,
            rule: rule.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.rule)
    }
}

impl std::error::Error for ValidationError {}

/// Checks a job name: 1–256 characters, each an ASCII letter, digit, `-` or `_`.
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new("name", "must not be empty"));
    }
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        return Err(ValidationError::new(
            "name",
            format!("must be at most {MAX_NAME_LEN} characters, got {len}"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(ValidationError::new(
            "name",
            format!("may contain only ASCII letters, digits, '-' and '_', found {c:?}"),
        ));
    }
    Ok(())
}

/// Checks a path: non-empty, at most 4096 bytes, no NUL byte and no `..` component.
pub fn validate_path(path: &str) -> Result<(), ValidationError> {
    if path.is_empty() {
        return Err(ValidationError::new("path", "must not be empty"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(ValidationError::new(
            "path",
            format!("must be at most {MAX_PATH_BYTES} bytes, got {}", path.len()),
        ));
    }
    if path.contains('\0') {
        return Err(ValidationError::new("path", "must not contain a NUL byte"));
    }
    if path.split('/').any(|component| component == "..") {
        return Err(ValidationError::new(
            "path",
            "must not contain a '..' component",
        ));
    }
    Ok(())
}

/// Checks a command given as argv: non-empty, and the arguments joined by single spaces are at most
/// 65536 bytes with no NUL byte and none of the shell metacharacter sequences.
pub fn validate_command<S: AsRef<str>>(argv: &[S]) -> Result<(), ValidationError> {
    if argv.is_empty() || argv[0].as_ref().is_empty() {
        return Err(ValidationError::new(
            "command",
            "must not be empty (give the program and its arguments)",
        ));
    }
    let line = argv
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join(" ");
    if line.len() > MAX_COMMAND_BYTES {
        return Err(ValidationError::new(
            "command",
            format!(
                "must be at most {MAX_COMMAND_BYTES} bytes, got {}",
                line.len()
            ),
        ));
    }
    if line.contains('\0') {
        return Err(ValidationError::new(
            "command",
            "must not contain a NUL byte",
        ));
    }
    if let Some(seq) = FORBIDDEN_IN_COMMAND.iter().find(|seq| line.contains(**seq)) {
        return Err(ValidationError::new(
            "command",
            format!("must not contain {seq:?} (commands run as argv, never through a shell)"),
        ));
    }
    Ok(())
}

fn validate_range(
    field: &'static str,
    value: i64,
    min: i64,
    max: i64,
) -> Result<(), ValidationError> {
    if value < min || value > max {
        return Err(ValidationError::new(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

/// Checks a GPU count: 0–1024.
pub fn validate_gpus(gpus: i64) -> Result<(), ValidationError> {
    validate_range("gpus", gpus, 0, MAX_GPUS)
}

/// Checks a CPU count: 1–4096.
pub fn validate_cpus(cpus: i64) -> Result<(), ValidationError> {
    validate_range("cpus", cpus, 1, MAX_CPUS)
}

/// Checks a priority: −1000..=1000 (higher runs first).
pub fn validate_priority(priority: i64) -> Result<(), ValidationError> {
    validate_range("priority", priority, MIN_PRIORITY, MAX_PRIORITY)
}

/// Multiplier of each accepted memory unit (decimal `KB`… and binary `KiB`…).
const MEMORY_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
];

/// Largest accepted memory request: what a signed 64-bit integer (the store's column) holds.
pub const MAX_MEMORY_BYTES: u64 = i64::MAX as u64;

/// Parses a memory string like `512MB`, `8GB` or `1.5GiB` into an exact byte count.
///
/// Grammar: digits, optionally `.` and more digits, then a unit from `B KB MB GB TB PB KiB MiB GiB
/// TiB PiB` (case-sensitive, no spaces, no sign). The result must be a whole, positive number of
/// bytes: `1.5GiB` is 1610612736, `1.5B` and `0MB` are rejected. Arithmetic is exact (integers).
pub fn parse_memory(text: &str) -> Result<u64, ValidationError> {
    let bad = |why: &str| {
        ValidationError::new(
            "memory",
            format!("{why} in {text:?} (expected a number and a unit, like \"512MB\", \"8GB\" or \"1.5GiB\")"),
        )
    };
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| bad("missing unit"))?;
    let (number, unit) = text.split_at(digits_end);
    let multiplier = MEMORY_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, m)| *m)
        .ok_or_else(|| bad("unknown unit"))?;
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.contains('.') {
        return Err(bad("malformed number"));
    }
    // value = (whole * 10^k + fraction) * multiplier / 10^k, computed exactly in u128.
    let too_large = || {
        ValidationError::new(
            "memory",
            format!("{text:?} is larger than the maximum of {MAX_MEMORY_BYTES} bytes"),
        )
    };
    let mut numerator: u128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        let d = u128::from(c as u8 - b'0');
        numerator = numerator
            .checked_mul(10)
            .and_then(|n| n.checked_add(d))
            .ok_or_else(too_large)?;
    }
    let scale = u32::try_from(fraction.len())
        .ok()
        .and_then(|k| 10u128.checked_pow(k))
        .ok_or_else(too_large)?;
    let scaled = numerator.checked_mul(multiplier).ok_or_else(too_large)?;
    if scaled % scale != 0 {
        return Err(ValidationError::new(
            "memory",
            format!("{text:?} is not a whole number of bytes"),
        ));
    }
    let bytes = scaled / scale;
    if bytes == 0 {
        return Err(ValidationError::new(
            "memory",
            format!("{text:?} must be at least 1 byte"),
        ));
    }
    u64::try_from(bytes)
        .ok()
        .filter(|b| *b <= MAX_MEMORY_BYTES)
        .ok_or_else(too_large)
}

/// Checks a memory request already given as a byte count: 1 ..= [`MAX_MEMORY_BYTES`].
pub fn validate_memory_bytes(bytes: i64) -> Result<u64, ValidationError> {
    u64::try_from(bytes)
        .ok()
        .filter(|b| *b >= 1)
        .ok_or_else(|| {
            ValidationError::new(
                "memory",
                format!("must be between 1 and {MAX_MEMORY_BYTES} bytes, got {bytes}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of<T: fmt::Debug>(r: Result<T, ValidationError>) -> &'static str {
        r.expect_err("expected a validation error").field
    }

    #[test]
    fn name_length_limits() {
        assert_eq!(field_of(validate_name("")), "name");
        assert!(validate_name("a").is_ok());
        assert!(validate_name(&"a".repeat(256)).is_ok());
        let err = validate_name(&"a".repeat(257)).unwrap_err();
        assert_eq!(err.rule, "must be at most 256 characters, got 257");
    }

    #[test]
    fn name_characters() {
        assert!(validate_name("train-ResNet_50").is_ok());
        for bad in ["a b", "a.b", "a/b", "é", "a\0", "a$", "job!", "<lambda>"] {
            assert_eq!(field_of(validate_name(bad)), "name", "{bad:?}");
        }
        // 256 multi-byte characters: rejected for the characters, not the length.
        let err = validate_name(&"é".repeat(256)).unwrap_err();
        assert!(err.rule.contains("ASCII"), "{}", err.rule);
    }

    #[test]
    fn path_limits() {
        assert!(validate_path("/").is_ok());
        assert!(validate_path(&"a".repeat(4096)).is_ok());
        let long = format!("/{}", "a".repeat(4096));
        assert_eq!(
            validate_path(&long).unwrap_err().rule,
            "must be at most 4096 bytes, got 4097"
        );
        // Byte length, not characters: 2048 two-byte characters is 4096 bytes, one more is over.
        assert!(validate_path(&"é".repeat(2048)).is_ok());
        assert_eq!(
            field_of(validate_path(&format!("{}a", "é".repeat(2048)))),
            "path"
        );
        assert_eq!(field_of(validate_path("")), "path");
    }

    #[test]
    fn path_nul_and_parent_components() {
        assert!(validate_path("a\0b").unwrap_err().rule.contains("NUL"));
        for bad in ["..", "../x", "a/..", "a/../b", "/a/b/.."] {
            assert!(
                validate_path(bad).unwrap_err().rule.contains("'..'"),
                "{bad:?}"
            );
        }
        for ok in ["a..b", "..a", "a..", ".../x", "./x", "a/./b", "/tmp/x.y"] {
            assert!(validate_path(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn command_length_limits() {
        assert!(validate_command(&["a".repeat(65536)]).is_ok());
        assert_eq!(
            validate_command(&["a".repeat(65537)]).unwrap_err().rule,
            "must be at most 65536 bytes, got 65537"
        );
        // Joined with spaces: two arguments of 32767 bytes make 65535 bytes, 32768 each 65537.
        assert!(validate_command(&["a".repeat(32767), "b".repeat(32767)]).is_ok());
        assert_eq!(
            field_of(validate_command(&["a".repeat(32768), "b".repeat(32768)])),
            "command"
        );
        assert_eq!(field_of(validate_command::<&str>(&[])), "command");
        assert_eq!(field_of(validate_command(&[""])), "command");
    }

    #[test]
    fn command_metacharacters() {
        let cases = [
            ("echo $(id)", "\"$(\""),
            ("echo `id`", "\"`\""),
            ("a && b", "\"&&\""),
            ("a || b", "\"||\""),
            ("a; b", "\";\""),
            ("a | b", "\"|\""),
            ("a > f", "\">\""),
            ("a < f", "\"<\""),
            ("cat ../secret", "\"..\""),
        ];
        for (cmd, seq) in cases {
            let argv: Vec<&str> = cmd.split(' ').collect();
            let err = validate_command(&argv).unwrap_err();
            assert_eq!(err.field, "command");
            assert!(
                err.rule.starts_with(&format!("must not contain {seq}")),
                "{cmd}: {}",
                err.rule
            );
        }
        assert!(validate_command(&["a\0b"])
            .unwrap_err()
            .rule
            .contains("NUL"));
        for ok in [
            vec!["python", "-c", "print(1)"],
            vec!["echo", "$HOME", "&", "a.b", "./x", "{}", "*"],
        ] {
            assert!(validate_command(&ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn numeric_limits() {
        for (f, lo, hi, field) in [
            (
                validate_gpus as fn(i64) -> Result<(), ValidationError>,
                0,
                1024,
                "gpus",
            ),
            (validate_cpus, 1, 4096, "cpus"),
            (validate_priority, -1000, 1000, "priority"),
        ] {
            assert!(f(lo).is_ok(), "{field} {lo}");
            assert!(f(hi).is_ok(), "{field} {hi}");
            assert_eq!(field_of(f(lo - 1)), field);
            assert_eq!(field_of(f(hi + 1)), field);
            assert_eq!(
                f(hi + 1).unwrap_err().rule,
                format!("must be between {lo} and {hi}, got {}", hi + 1)
            );
        }
    }

    #[test]
    fn memory_exact_values() {
        let cases = [
            ("512MB", 512_000_000u64),
            ("8GB", 8_000_000_000),
            ("1.5GiB", 1_610_612_736),
            ("1B", 1),
            ("1KiB", 1024),
            ("0.5KiB", 512),
            ("2.25MiB", 2_359_296),
            ("1.000GB", 1_000_000_000),
            ("1PiB", 1 << 50),
            ("9223372036854775807B", i64::MAX as u64),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_memory(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn memory_rejections() {
        for bad in [
            "",
            "8",
            "GB",
            "8 GB",
            "8gb",
            "8Gb",
            "8GIB",
            "-1GB",
            "+1GB",
            "1.GB",
            ".5GB",
            "1..5GB",
            "1.2.3GB",
            "0MB",
            "0.0GiB",
            "1.5B",
            "0.0001KB",
            "8GBs",
            "8XB",
            "1e3MB",
            "9223372036854775808B",
            "10000PB",
            "99999999999999999999999999999999999999999PB",
        ] {
            assert_eq!(field_of(parse_memory(bad)), "memory", "{bad:?}");
        }
        assert!(parse_memory("1.5B")
            .unwrap_err()
            .rule
            .contains("whole number"));
    }

    #[test]
    fn memory_bytes_limits() {
        assert_eq!(validate_memory_bytes(1), Ok(1));
        assert_eq!(validate_memory_bytes(i64::MAX), Ok(i64::MAX as u64));
        assert_eq!(field_of(validate_memory_bytes(0)), "memory");
        assert_eq!(field_of(validate_memory_bytes(-5)), "memory");
    }

    #[test]
    fn display_names_field_and_rule() {
        let err = validate_gpus(2000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid gpus: must be between 0 and 1024, got 2000"
        );
    }

    proptest::proptest! {
        #[test]
        fn memory_integer_units_roundtrip(n in 1u64..1_000_000, unit in 0usize..MEMORY_UNITS.len()) {
            let (name, mult) = MEMORY_UNITS[unit];
            let expected = u128::from(n) * mult;
            let parsed = parse_memory(&format!("{n}{name}"));
            if expected <= u128::from(MAX_MEMORY_BYTES) {
                proptest::prop_assert_eq!(parsed, Ok(expected as u64));
            } else {
                proptest::prop_assert!(parsed.is_err());
            }
        }

        #[test]
        fn valid_names_accepted(name in "[A-Za-z0-9_-]{1,256}") {
            proptest::prop_assert!(validate_name(&name).is_ok());
        }

        #[test]
        fn parse_memory_never_panics(text in "\\PC{0,24}") {
            let _ = parse_memory(&text);
        }
    }
}
