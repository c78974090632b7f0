//! The fast path for the sample values of scraped pages. Nearly every value on a page is a plain
//! decimal with few significant digits (`190932`, `7.6238e-05`, `4.4046288803e+10`); for those a
//! hand-written scan plus one exact multiplication or division (Clinger's fast path: a mantissa
//! below 2^53 and a power of ten up to 10^22 are both exact doubles, so one IEEE operation rounds
//! correctly) gives the very bits `str::parse::<f64>` gives, several times faster. Anything else
//! (more digits, large exponents, `NaN`, `+Inf`, junk) is left to the caller's general parser.

/// 10^0 ..= 10^22, every one an exact double.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The largest mantissa that converts to a double exactly.
const MAX_EXACT: u64 = 1 << 53;

/// Parses `s` (`[+-]?digits[.digits][(e|E)[+-]?digits]`, at most 19 digits before the exponent)
/// when the result is exact by Clinger's rule; `None` means "not on the fast path", not "invalid":
/// the caller then asks `str::parse`, whose answer the fast path always equals.
pub(crate) fn parse_plain_decimal(s: &[u8]) -> Option<f64> {
    let mut i = 0;
    let negative = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut mantissa = 0u64;
    let int_start = i;
    while let Some(&d) = s.get(i)
        && d.is_ascii_digit()
    {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        i += 1;
    }
    let mut digits = i - int_start;
    let mut exponent = 0i32;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(&d) = s.get(i)
            && d.is_ascii_digit()
        {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            i += 1;
        }
        digits += i - frac_start;
        exponent = -((i - frac_start) as i32);
    }
    // 19 digits always fit a u64 (the wrapping arithmetic above never wraps then).
    if digits == 0 || digits > 19 {
        return None;
    }
    if let Some(&e) = s.get(i)
        && e | 0x20 == b'e'
    {
        i += 1;
        let negative_exponent = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let exp_start = i;
        let mut written = 0i32;
        // Four digits at most: anything larger is far outside the fast path anyway.
        while let Some(&d) = s.get(i)
            && d.is_ascii_digit()
            && i - exp_start < 4
        {
            written = written * 10 + i32::from(d - b'0');
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        exponent += if negative_exponent { -written } else { written };
    }
    if i != s.len() || mantissa > MAX_EXACT {
        return None;
    }
    let magnitude = mantissa as f64;
    let value = if exponent >= 0 {
        magnitude * *POW10.get(exponent as usize)?
    } else {
        magnitude / *POW10.get(exponent.unsigned_abs() as usize)?
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn same(text: &str) -> Result<(), TestCaseError> {
        let fast = parse_plain_decimal(text.as_bytes());
        if let Some(fast) = fast {
            let general: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(fast.to_bits(), general.to_bits(), "{:?}", text);
        }
        Ok(())
    }

    #[test]
    fn page_values_take_the_fast_path() {
        for (text, value) in [
            ("190932", 190932.0f64),
            ("7.6238e-05", 7.6238e-05),
            ("4.4046288803e+10", 4.4046288803e+10),
            ("-0", -0.0),
            ("+1.5E3", 1500.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("8.999999999999998", 8.999999999999998),
        ] {
            let fast = parse_plain_decimal(text.as_bytes()).unwrap_or_else(|| panic!("{text} not fast"));
            assert_eq!(fast.to_bits(), value.to_bits(), "{text}");
        }
        for slow in
            ["", ".", "-", "e5", "1e", "1e+", "NaN", "+Inf", "1_0", "1 ", "1e99999", "12345678901234567890", "1e23"]
        {
            assert_eq!(parse_plain_decimal(slow.as_bytes()), None, "{slow:?}");
        }
    }

    proptest! {
        /// Whatever the fast path answers is bit-for-bit what `str::parse` answers.
        #[test]
        fn decimal_text_matches_the_general_parser(
            text in "[+-]?[0-9]{0,20}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{0,5})?"
        ) {
            same(&text)?;
        }

        /// The same for the way programs print doubles (shortest round trip, exponent forms).
        #[test]
        fn printed_doubles_match_the_general_parser(value in any::<f64>(), digits in 0usize..18) {
            same(&format!("{value}"))?;
            same(&format!("{value:e}"))?;
            same(&format!("{value:.digits$e}"))?;
            same(&format!("{value:.digits$}"))?;
        }

        /// Integers up to the 2^53 limit are all fast and exact.
        #[test]
        fn integers_are_fast(n in 0u64..=MAX_EXACT, zeros in 0usize..3) {
            let text = format!("{}{n}", "0".repeat(zeros));
            if text.len() <= 19 {
                prop_assert_eq!(parse_plain_decimal(text.as_bytes()), Some(n as f64));
            }
        }
    }
}
