//! Decimal value encoding for blocks: most metric values are decimals with few digits (counters of
//! bytes or requests, gauges like `0.25`, seconds with microsecond precision), yet as IEEE doubles
//! their low mantissa bits look random to zstd. Stored as an integer mantissa with one decimal
//! exponent per series, the same values compress about twice as well (measured on node_exporter
//! data: 0.95 → 0.50 bytes/sample for the value column; see `tsdb/BLOCKS.md`).
//!
//! The encoding is exact or not used: a value is stored as `mantissa` only when
//! `mantissa as f64 / 10^exponent` gives back the very same bits (both operands are exact doubles,
//! so the division is correctly rounded the same way by every IEEE reader: Rust, pyarrow, DuckDB).
//! Everything else (NaN incl. stale markers, infinities, `-0.0`, more than 15 significant digits)
//! stays a plain float64 in its own column.

/// The largest decimal exponent tried. `10^15` and every smaller power of ten are exact doubles.
pub const MAX_EXPONENT: u8 = 15;

/// Mantissas are kept below 2^53 so that they convert to f64 exactly.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0;

const POW10: [f64; MAX_EXPONENT as usize + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// The value `mantissa / 10^exponent` stands for.
pub fn decode(mantissa: i64, exponent: u8) -> f64 {
    mantissa as f64 / POW10[exponent as usize]
}

/// The mantissa of `value` at `exponent`, if it round-trips bit-exactly.
pub fn encode(value: f64, exponent: u8) -> Option<i64> {
    let scaled = (value * POW10[exponent as usize]).round();
    if !scaled.is_finite() || scaled.abs() >= MAX_MANTISSA {
        return None;
    }
    let mantissa = scaled as i64;
    (decode(mantissa, exponent).to_bits() == value.to_bits()).then_some(mantissa)
}

/// The smallest exponent at which `value` round-trips, if any.
fn smallest_exponent(value: f64) -> Option<u8> {
    (0..=MAX_EXPONENT).find(|&e| encode(value, e).is_some())
}

/// The exponent to store a series' values with: the largest of its values' smallest exponents, so
/// that the values with the most decimal places fit too. Values that fit at no exponent (NaN,
/// infinities) do not count; they are stored as floats whatever the series' exponent.
pub fn series_exponent(values: impl IntoIterator<Item = f64>) -> u8 {
    let mut exponent = 0;
    for value in values {
        if exponent == MAX_EXPONENT {
            break;
        }
        if encode(value, exponent).is_some() {
            continue;
        }
        if let Some(e) = smallest_exponent(value) {
            exponent = exponent.max(e);
        }
    }
    exponent
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn typical_metric_values_get_small_exponents() {
        assert_eq!(series_exponent([0.0, 1.0, 42.0, 1.7e12]), 0);
        assert_eq!(series_exponent([0.25, 1.5]), 2);
        assert_eq!(series_exponent([0.1, 0.2, 0.3]), 1);
        assert_eq!(series_exponent([1234.567891]), 6);
        assert_eq!(encode(0.3, 1), Some(3));
        assert_eq!(encode(1234.567891, 6), Some(1_234_567_891));
    }

    #[test]
    fn values_that_do_not_round_trip_stay_floats() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        // 0.1 + 0.2 = 0.30000000000000004: 17 significant digits, more than a mantissa holds.
        let sum = 0.1 + 0.2;
        for v in [f64::NAN, stale, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e300, sum] {
            assert_eq!(series_exponent([v]), 0, "{v}");
            assert!(encode(v, 0).is_none(), "{v}");
        }
        assert!((0..=MAX_EXPONENT).all(|e| encode(sum, e).is_none()));
        // pi's shortest form has 16 digits: it fits, as 3141592653589793 / 10^15.
        assert_eq!(series_exponent([std::f64::consts::PI]), 15);
        // A float-only value does not raise the series' exponent.
        assert_eq!(series_exponent([f64::NAN, 2.5]), 1);
    }

    proptest! {
        /// Whatever the value, an encoded mantissa decodes to the identical bits.
        #[test]
        fn encoding_is_exact_or_refused(bits in any::<u64>(), exponent in 0..=MAX_EXPONENT) {
            let value = f64::from_bits(bits);
            if let Some(m) = encode(value, exponent) {
                prop_assert_eq!(decode(m, exponent).to_bits(), bits);
            }
        }

        /// Decimals with up to six places, as counters and gauges have them, always encode.
        #[test]
        fn short_decimals_always_encode(units in -1_000_000_000i64..1_000_000_000, places in 0u8..=6) {
            let value = units as f64 / POW10[places as usize];
            let exponent = series_exponent([value]);
            prop_assert!(exponent <= places);
            let m = encode(value, exponent);
            prop_assert!(m.is_some());
            prop_assert_eq!(decode(m.unwrap(), exponent).to_bits(), value.to_bits());
        }
    }
}
