//! pyarrow's default null spellings (`ConvertOptions.null_values`): null in typed columns,
//! kept as text in string columns. One list shared by inference, the fast path and the
//! `arrow_csv` fallback so the three cannot disagree.

use std::sync::LazyLock;

use regex::Regex;

/// `pyarrow.csv.ConvertOptions().null_values` (pyarrow 26), the empty field included.
pub(super) const NULL_SPELLINGS: [&str; 17] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null",
];

/// The longest spelling, in bytes: longer fields are never null.
pub(super) const MAX_NULL_LEN: usize = 8;

/// Whether a field is one of the null spellings (a length check, then byte comparisons).
#[inline]
pub(super) fn is_null_spelling(field: &[u8]) -> bool {
    field.len() <= MAX_NULL_LEN && NULL_SPELLINGS.iter().any(|s| s.as_bytes() == field)
}

/// A regex matching exactly the null spellings, for `arrow_csv` (which applies it to every
/// column it decodes, so it is only given typed columns). Built once; it is made of escaped
/// literals, so it compiles.
pub(super) fn null_regex() -> Result<Regex, regex::Error> {
    static REGEX: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
        let alternatives: Vec<String> = NULL_SPELLINGS.iter().map(|s| regex::escape(s)).collect();
        Regex::new(&format!("^(?:{})$", alternatives.join("|")))
    });
    REGEX.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_regex_agree() {
        let re = null_regex().unwrap();
        for s in NULL_SPELLINGS {
            assert!(is_null_spelling(s.as_bytes()), "{s:?}");
            assert!(re.is_match(s), "{s:?}");
            assert!(s.len() <= MAX_NULL_LEN);
        }
        for s in [
            "Nan",
            "NAN",
            "none",
            "None",
            " NA",
            "NA ",
            "nan(1)",
            "#N/A N/A ",
            "0",
            "-",
        ] {
            assert!(!is_null_spelling(s.as_bytes()), "{s:?}");
            assert!(!re.is_match(s), "{s:?}");
        }
    }
}
