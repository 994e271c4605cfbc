//! Exact decimals for the CSV fast path: a plain decimal field (`-12.345`) read as an integer
//! mantissa and a digit count, turned into the float `arrow_cast` would give with a single
//! division where that division is exact, so the common case skips the general float parser.

use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::ArrowPrimitiveType;
use arrow_cast::parse::Parser;

/// Floats whose plain decimal form can be turned into the correctly rounded value with one
/// exact division (the mantissa and the power of ten are both exact in the type), which is
/// the value `lexical_core` (behind `arrow_cast`) gives too.
pub(super) trait ExactDecimal: ArrowPrimitiveType + Parser {
    /// The value of `±mantissa / 10^fraction_digits`, when one division gives it exactly.
    fn exact(negative: bool, mantissa: u64, fraction_digits: usize) -> Option<Self::Native>;
}

const POW10_F64: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
const POW10_F32: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

impl ExactDecimal for Float64Type {
    #[inline]
    fn exact(negative: bool, mantissa: u64, fraction_digits: usize) -> Option<f64> {
        if mantissa > 1 << 53 || fraction_digits >= POW10_F64.len() {
            return None;
        }
        let v = mantissa as f64 / POW10_F64[fraction_digits];
        Some(if negative { -v } else { v })
    }
}

impl ExactDecimal for Float32Type {
    #[inline]
    fn exact(negative: bool, mantissa: u64, fraction_digits: usize) -> Option<f32> {
        if mantissa > 1 << 24 || fraction_digits >= POW10_F32.len() {
            return None;
        }
        let v = mantissa as f32 / POW10_F32[fraction_digits];
        Some(if negative { -v } else { v })
    }
}

/// Reads `-?\d+(\.\d+)?` at `start` (at most 19 digits) followed by a delimiter, `\r`, `\n`
/// or the end: (negative, mantissa, fraction digits, end).
#[inline]
pub(super) fn scan_decimal(
    data: &[u8],
    start: usize,
    delimiter: u8,
) -> Option<(bool, u64, usize, usize)> {
    let mut i = start;
    let negative = data.get(i) == Some(&b'-');
    i += usize::from(negative);
    let mut mantissa = 0u64;
    let int_start = i;
    while let Some(d) = data
        .get(i)
        .map(|c| c.wrapping_sub(b'0'))
        .filter(|d| *d <= 9)
    {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let int_digits = i - int_start;
    if int_digits == 0 {
        return None;
    }
    let mut fraction_digits = 0;
    if data.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(d) = data
            .get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        fraction_digits = i - frac_start;
        if fraction_digits == 0 {
            return None;
        }
    }
    if int_digits + fraction_digits > 19 {
        return None;
    }
    match data.get(i) {
        None => {}
        Some(&c) if c == delimiter || c == b'\n' || c == b'\r' => {}
        Some(_) => return None,
    }
    Some((negative, mantissa, fraction_digits, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimals_match_arrow_cast() {
        // Deterministic pseudo-random decimals of every length up to 20 digits.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for s in [
            "-0",
            "-0.000",
            "0.0",
            "007.50",
            "9007199254740992",
            "9007199254740993",
        ] {
            let (neg, m, f, _) = scan_decimal(s.as_bytes(), 0, b',').unwrap();
            if let Some(v) = Float64Type::exact(neg, m, f) {
                assert_eq!(v.to_bits(), Float64Type::parse(s).unwrap().to_bits(), "{s}");
            }
        }
        for _ in 0..200_000 {
            let r = next();
            let int_digits = 1 + (r % 12) as usize;
            let frac_digits = ((r >> 8) % 12) as usize;
            let mut s = String::new();
            if r & (1 << 20) != 0 {
                s.push('-');
            }
            for k in 0..int_digits + frac_digits {
                if k == int_digits {
                    s.push('.');
                }
                s.push(char::from(b'0' + (next() % 10) as u8));
            }
            let bytes = s.as_bytes();
            if let Some((neg, m, f, end)) = scan_decimal(bytes, 0, b',') {
                assert_eq!(end, bytes.len());
                if let Some(v) = Float64Type::exact(neg, m, f) {
                    let want = Float64Type::parse(&s).unwrap();
                    assert_eq!(v.to_bits(), want.to_bits(), "{s}");
                }
                if let Some(v) = Float32Type::exact(neg, m, f) {
                    let want = Float32Type::parse(&s).unwrap();
                    assert_eq!(v.to_bits(), want.to_bits(), "{s}");
                }
            }
        }
    }
}
