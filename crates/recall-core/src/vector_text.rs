//! pgvector's text format for vectors: `[1,2.5,-3e-05]`.
//!
//! Parsing follows pgvector's `vector_in` step by step (whitespace rules, `strtof`-style
//! element syntax, the order in which errors are detected) so the same bad literal gets the
//! same message. Formatting reproduces PostgreSQL's `float4out` shortest round-trip output,
//! which is what pgvector prints, so dumps and client round trips are byte-identical.

/// Postgres' and pgvector's upper bound on a vector's dimensions.
pub const VECTOR_MAX_DIM: usize = 16000;

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// `invalid input syntax for type vector: "…"`, with pgvector's detail where it has one.
    Syntax { detail: Option<&'static str> },
    /// `vector must have at least 1 dimension`
    Empty,
    /// `vector cannot have more than 16000 dimensions`
    TooManyDimensions,
    /// `"…" is out of range for type vector` (the offending token)
    OutOfRange(String),
    /// `NaN not allowed in vector`
    NaN,
    /// `infinite value not allowed in vector`
    Infinite,
}

/// pgvector's `vector_isspace`: the C locale's space characters.
#[inline]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Checks one element the way pgvector's `CheckElement` does.
#[inline]
pub fn check_element(v: f32) -> Result<(), ParseError> {
    if v.is_nan() {
        Err(ParseError::NaN)
    } else if v.is_infinite() {
        Err(ParseError::Infinite)
    } else {
        Ok(())
    }
}

/// Length of the longest prefix of `s` that `strtof` would consume (0 if none): an optional
/// sign, then digits with an optional point and exponent, or `inf`, `infinity`, `nan`.
fn float_token_len(s: &[u8]) -> usize {
    let mut i = 0;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    let rest = &s[i..];
    let lower: Vec<u8> = rest
        .iter()
        .take(8)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if lower.starts_with(b"infinity") {
        return i + 8;
    }
    if lower.starts_with(b"inf") || lower.starts_with(b"nan") {
        return i + 3;
    }
    let start_digits = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - start_digits;
    if i < s.len() && s[i] == b'.' {
        let dot = i;
        i += 1;
        let frac_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        mantissa_digits += i - frac_start;
        if mantissa_digits == 0 {
            i = dot;
        }
    }
    if mantissa_digits == 0 {
        return 0;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    i
}

/// Parses a vector literal. `max_dim` is normally [`VECTOR_MAX_DIM`].
pub fn parse(lit: &str, max_dim: usize) -> Result<Vec<f32>, ParseError> {
    let s = lit.as_bytes();
    let mut p = 0;
    let syntax = |detail| Err(ParseError::Syntax { detail });
    while p < s.len() && is_space(s[p]) {
        p += 1;
    }
    if p >= s.len() || s[p] != b'[' {
        return syntax(Some("Vector contents must start with \"[\"."));
    }
    p += 1;
    while p < s.len() && is_space(s[p]) {
        p += 1;
    }
    if p < s.len() && s[p] == b']' {
        return Err(ParseError::Empty);
    }
    let mut out = Vec::new();
    loop {
        if out.len() == max_dim {
            return Err(ParseError::TooManyDimensions);
        }
        while p < s.len() && is_space(s[p]) {
            p += 1;
        }
        if p >= s.len() {
            return syntax(None);
        }
        let n = float_token_len(&s[p..]);
        if n == 0 {
            return syntax(None);
        }
        let token = &lit[p..p + n];
        let v: f32 = match token.parse() {
            Ok(v) => v,
            Err(_) => return syntax(None),
        };
        let spelled_infinite = token.bytes().any(|c| c == b'i' || c == b'I');
        if v.is_infinite() && !spelled_infinite {
            // strtof reports ERANGE for a finite literal too large for float4.
            return Err(ParseError::OutOfRange(token.to_string()));
        }
        check_element(v)?;
        out.push(v);
        p += n;
        while p < s.len() && is_space(s[p]) {
            p += 1;
        }
        if p < s.len() && s[p] == b',' {
            p += 1;
        } else if p < s.len() && s[p] == b']' {
            p += 1;
            break;
        } else {
            return syntax(None);
        }
    }
    while p < s.len() && is_space(s[p]) {
        p += 1;
    }
    if p != s.len() {
        return syntax(Some("Junk after closing right brace."));
    }
    Ok(out)
}

/// Appends `v` as PostgreSQL's `float4out` prints it with the default `extra_float_digits`:
/// the shortest digits that round-trip, fixed notation for decimal exponents in
/// [-4, FLT_DIG = 6), otherwise `d.ddde±XX`.
pub fn push_float4(out: &mut String, v: f32) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    if v == 0.0 {
        out.push('0');
        return;
    }
    let (digits, exp) = shortest_digits(v.abs());
    let nd = digits.len() as i32;
    if (-4..6).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if nd <= exp + 1 {
            out.push_str(&digits);
            for _ in 0..(exp + 1 - nd) {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..(exp + 1) as usize]);
            out.push('.');
            out.push_str(&digits[(exp + 1) as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()).unwrap();
    }
}

/// The digits PostgreSQL's Ryu (`f2s.c`, built without `STRICTLY_SHORTEST`) picks for a
/// positive finite `v`, and the decimal exponent of the first digit. PostgreSQL excludes the
/// rounding interval's bounds even for even mantissas, so a decimal lying exactly halfway to
/// the neighbouring float is never used; Rust's own shortest formatting accepts it, which is
/// why this does not just call `{:e}`. Among the shortest decimals strictly inside the
/// interval it takes the one nearest to `v`, ties to even — Rust's fixed-precision
/// formatting is exactly rounded half-to-even, so it supplies that candidate.
fn shortest_digits(v: f32) -> (String, i32) {
    let bits = v.to_bits();
    let (mant, bexp) = (bits & 0x7f_ffff, (bits >> 23) & 0xff);
    let (m2, e2) = if bexp == 0 {
        (mant, -149)
    } else {
        (mant | 0x80_0000, bexp as i32 - 150)
    };
    // Interval bounds in units of 2^(e2-2); the lower gap halves at a power of two.
    let lower_shift = if mant != 0 || bexp <= 1 { 1 } else { 0 };
    let lo = Dyadic {
        m: 4 * m2 as u64 - 1 - lower_shift,
        e: e2 - 2,
    };
    let hi = Dyadic {
        m: 4 * m2 as u64 + 2,
        e: e2 - 2,
    };

    // Fast path: reference Ryu (bounds accepted for even mantissas) agrees with PostgreSQL
    // whenever its answer is not exactly on a bound.
    let mut buf = ryu::Buffer::new();
    let candidate = Decimal::parse(buf.format_finite(v));
    if candidate.strictly_inside(&lo, &hi) {
        return candidate.digits_and_exp();
    }
    for n in 1..=9usize {
        let s = format!("{:.*e}", n - 1, v);
        let nearest = Decimal::parse(&s);
        if nearest.strictly_inside(&lo, &hi) {
            return nearest.digits_and_exp();
        }
        // At a power of two the interval is lopsided: the nearest candidate can fall outside
        // the short side while its neighbour on the long side is inside.
        let above = nearest.as_f64() <= v as f64;
        let other = Decimal {
            d: if above { nearest.d + 1 } else { nearest.d - 1 },
            k: nearest.k,
        };
        if other.d > 0 && other.strictly_inside(&lo, &hi) {
            return other.digits_and_exp();
        }
    }
    // Nine significant digits always identify a float4 uniquely.
    unreachable!("no float4 representation for {v:e}")
}

/// m × 2^e
struct Dyadic {
    m: u64,
    e: i32,
}

/// d × 10^k
#[derive(Clone, Copy)]
struct Decimal {
    d: u64,
    k: i32,
}

impl Decimal {
    /// Reads `123.45`, `1.5e20`, `1e-5`, `0.00001` (no sign).
    fn parse(s: &str) -> Decimal {
        let (m, e) = match s.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i32>().unwrap()),
            None => (s, 0),
        };
        let frac = m.split_once('.').map_or(0, |(_, f)| f.len() as i32);
        let d = m
            .bytes()
            .filter(u8::is_ascii_digit)
            .fold(0u64, |acc, c| acc * 10 + (c - b'0') as u64);
        Decimal { d, k: e - frac }
    }

    /// Correctly rounded: one IEEE operation on exact operands when 10^|k| is exact in f64.
    fn as_f64(&self) -> f64 {
        const P10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        if self.d < (1 << 53) && self.k.unsigned_abs() <= 22 {
            let p = P10[self.k.unsigned_abs() as usize];
            if self.k >= 0 {
                self.d as f64 * p
            } else {
                self.d as f64 / p
            }
        } else {
            format!("{}e{}", self.d, self.k).parse().unwrap()
        }
    }

    fn strictly_inside(&self, lo: &Dyadic, hi: &Dyadic) -> bool {
        use std::cmp::Ordering::*;
        self.cmp_dyadic(lo) == Greater && self.cmp_dyadic(hi) == Less
    }

    /// Exact comparison. The f64 values decide unless they tie (bounds are exact in f64, so
    /// a tie means the decimal is within half an f64 ulp); then big integers decide.
    fn cmp_dyadic(&self, b: &Dyadic) -> std::cmp::Ordering {
        let a = self.as_f64();
        let bf = b.m as f64 * (b.e as f64).exp2();
        match a.partial_cmp(&bf).unwrap() {
            std::cmp::Ordering::Equal => exact_cmp(self.d, self.k, b.m, b.e),
            o => o,
        }
    }

    fn digits_and_exp(&self) -> (String, i32) {
        let mut d = self.d;
        let mut k = self.k;
        while d % 10 == 0 {
            d /= 10;
            k += 1;
        }
        let s = d.to_string();
        let exp = k + s.len() as i32 - 1;
        (s, exp)
    }
}

/// Compares d·10^k with m·2^e exactly: both sides become integers after multiplying by the
/// powers of 2 and 5 that appear with negative exponents.
fn exact_cmp(d: u64, k: i32, m: u64, e: i32) -> std::cmp::Ordering {
    // d·2^k·5^k vs m·2^e
    let mut left = Big::from(d);
    let mut right = Big::from(m);
    if k >= 0 {
        left.mul_pow5(k as u32);
    } else {
        right.mul_pow5((-k) as u32);
    }
    let (l2, r2) = (k, e);
    let min2 = l2.min(r2);
    left.shl((l2 - min2) as u32);
    right.shl((r2 - min2) as u32);
    left.cmp(&right)
}

/// Just enough of an unsigned big integer for [`exact_cmp`]: little-endian u32 limbs.
#[derive(PartialEq, Eq)]
struct Big(Vec<u32>);

impl From<u64> for Big {
    fn from(v: u64) -> Self {
        Big(vec![v as u32, (v >> 32) as u32])
    }
}

impl Big {
    fn mul_small(&mut self, f: u32) {
        let mut carry = 0u64;
        for limb in self.0.iter_mut() {
            let p = *limb as u64 * f as u64 + carry;
            *limb = p as u32;
            carry = p >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow5(&mut self, mut k: u32) {
        while k >= 13 {
            self.mul_small(1_220_703_125); // 5^13
            k -= 13;
        }
        self.mul_small(5u32.pow(k));
    }

    fn shl(&mut self, bits: u32) {
        let (words, rest) = ((bits / 32) as usize, bits % 32);
        if rest > 0 {
            let mut carry = 0u32;
            for limb in self.0.iter_mut() {
                let v = *limb;
                *limb = (v << rest) | carry;
                carry = v >> (32 - rest);
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if words > 0 {
            self.0.splice(0..0, std::iter::repeat_n(0, words));
        }
    }

    fn trimmed(&self) -> &[u32] {
        let mut n = self.0.len();
        while n > 0 && self.0[n - 1] == 0 {
            n -= 1;
        }
        &self.0[..n]
    }

    fn cmp(&self, other: &Big) -> std::cmp::Ordering {
        let (a, b) = (self.trimmed(), other.trimmed());
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }
}

/// Formats a whole vector: `[x1,x2,…]` with no spaces, as pgvector's `vector_out`.
pub fn format(values: &[f32]) -> String {
    let mut out = String::with_capacity(2 + values.len() * 10);
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_float4(&mut out, *v);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f32) -> String {
        let mut s = String::new();
        push_float4(&mut s, v);
        s
    }

    #[test]
    fn float4out_forms() {
        assert_eq!(f(1.0), "1");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(1e-5), "1e-05");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(1.5e20), "1.5e+20");
        assert_eq!(f(1e15), "1e+15");
        assert_eq!(f(123456789012345.0), "1.2345679e+14");
        assert_eq!(f(1000000.0), "1e+06");
        assert_eq!(f(123456.7), "123456.7");
        assert_eq!(f(-53889060.0), "-5.388906e+07");
        assert_eq!(f(3.4028235e38), "3.4028235e+38");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(1.17549435e-38), "1.1754944e-38");
        assert_eq!(f(1e-45), "1e-45");
        assert_eq!(f(100.0), "100");
        assert_eq!(f(0.30000001), "0.3");
        // PostgreSQL excludes interval bounds and rounds ties to even (checked against
        // float4out): these differ from Rust's own `{}` output.
        assert_eq!(f(84983424.0), "8.4983424e+07");
        assert_eq!(f(-99634944.0), "-9.9634944e+07");
        assert_eq!(f(-304297.625), "-304297.62");
        assert_eq!(f(2391898.25), "2.3918982e+06");
    }

    #[test]
    fn round_trip() {
        let mut s = 12345u32;
        for _ in 0..20000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let v = f32::from_bits(s);
            if !v.is_finite() {
                continue;
            }
            let text = f(v);
            assert_eq!(
                text.parse::<f32>().unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn parses_with_whitespace() {
        assert_eq!(
            parse(" [ 1 , 2.5,-3e-1 ] ", 16000).unwrap(),
            vec![1.0, 2.5, -0.3]
        );
        assert_eq!(parse("[1.,.5,+2]", 16000).unwrap(), vec![1.0, 0.5, 2.0]);
    }

    #[test]
    fn parse_errors() {
        let e = |s| parse(s, 16000).unwrap_err();
        assert_eq!(
            e("1,2"),
            ParseError::Syntax {
                detail: Some("Vector contents must start with \"[\".")
            }
        );
        assert_eq!(e("[]"), ParseError::Empty);
        assert_eq!(e("[ ]"), ParseError::Empty);
        assert_eq!(e("["), ParseError::Syntax { detail: None });
        assert_eq!(e("[1,]"), ParseError::Syntax { detail: None });
        assert_eq!(e("[1 2]"), ParseError::Syntax { detail: None });
        assert_eq!(e("[1,2"), ParseError::Syntax { detail: None });
        assert_eq!(
            e("[1,2]x"),
            ParseError::Syntax {
                detail: Some("Junk after closing right brace.")
            }
        );
        assert_eq!(e("[1,NaN]"), ParseError::NaN);
        assert_eq!(e("[1,inf]"), ParseError::Infinite);
        assert_eq!(e("[-Infinity]"), ParseError::Infinite);
        assert_eq!(e("[1e39]"), ParseError::OutOfRange("1e39".into()));
        assert_eq!(e("[.]"), ParseError::Syntax { detail: None });
        assert_eq!(
            parse("[1,2,3]", 2).unwrap_err(),
            ParseError::TooManyDimensions
        );
    }

    #[test]
    fn format_vector() {
        assert_eq!(format(&[1.0, 2.0, 3.0]), "[1,2,3]");
        assert_eq!(format(&[0.5, -1e-7]), "[0.5,-1e-07]");
    }
}
