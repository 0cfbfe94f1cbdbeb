//! The safetensors container, as written by `safetensors.torch.save_file`.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON mapping tensor names
//! to `{dtype, shape, data_offsets}` (offsets relative to the end of the header) plus an
//! optional `__metadata__` string map, then the tensor bytes. The file comes from users, so
//! every length and offset is checked before it is used: a corrupt or truncated file is an
//! error, never an out-of-bounds read.

use std::collections::BTreeMap;

use super::TowerError;

/// Headers larger than this are refused before allocation (the format's own reference
/// implementation uses the same bound).
const MAX_HEADER: u64 = 100 * 1024 * 1024;

pub const METADATA_KEY: &str = "__metadata__";

/// Element types. Models are read as floats; the others occur in real files (BatchNorm's
/// `num_batches_tracked` is I64) and only need their size to be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
    Other(&'static str, usize),
}

const OTHER_DTYPES: [(&str, usize); 10] = [
    ("F64", 8),
    ("I64", 8),
    ("U64", 8),
    ("I32", 4),
    ("U32", 4),
    ("I16", 2),
    ("U16", 2),
    ("I8", 1),
    ("U8", 1),
    ("BOOL", 1),
];

impl Dtype {
    fn parse(s: &str) -> Option<Dtype> {
        match s {
            "F32" => Some(Dtype::F32),
            "F16" => Some(Dtype::F16),
            "BF16" => Some(Dtype::Bf16),
            _ => OTHER_DTYPES
                .iter()
                .find(|(n, _)| *n == s)
                .map(|&(n, size)| Dtype::Other(n, size)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
            Dtype::Other(n, _) => n,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::Other(_, size) => size,
        }
    }

    pub fn is_float(self) -> bool {
        !matches!(self, Dtype::Other(..))
    }
}

/// One tensor's description and its bytes, borrowed from the file.
#[derive(Clone, Debug)]
pub struct TensorView<'a> {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    data: &'a [u8],
}

impl TensorView<'_> {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values widened to f32 (f16 and bf16 convert exactly); None for non-float dtypes.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        Some(match self.dtype {
            Dtype::F32 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => self
                .data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::Bf16 => self
                .data
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            Dtype::Other(..) => return None,
        })
    }
}

/// A parsed file: tensor views into `bytes` and the metadata strings.
#[derive(Debug)]
pub struct SafeTensors<'a> {
    pub tensors: BTreeMap<String, TensorView<'a>>,
    pub metadata: BTreeMap<String, String>,
}

fn corrupt(detail: impl std::fmt::Display) -> TowerError {
    TowerError::Corrupt(format!("invalid safetensors file: {detail}"))
}

impl<'a> SafeTensors<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TowerError> {
        if bytes.len() < 8 {
            return Err(corrupt(format!(
                "{} bytes is too short for a header",
                bytes.len()
            )));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if n > MAX_HEADER || n > (bytes.len() - 8) as u64 {
            return Err(corrupt(format!(
                "header length {n} exceeds the file's {} bytes (truncated?)",
                bytes.len()
            )));
        }
        let header_end = 8 + n as usize;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..header_end])
                .map_err(|e| corrupt(format!("header is not a JSON object: {e}")))?;
        let data = &bytes[header_end..];
        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, v) in header {
            if name == METADATA_KEY {
                let map = v
                    .as_object()
                    .ok_or_else(|| corrupt("__metadata__ is not an object"))?;
                for (k, v) in map {
                    let s = v
                        .as_str()
                        .ok_or_else(|| corrupt(format!("metadata \"{k}\" is not a string")))?;
                    metadata.insert(k.clone(), s.to_owned());
                }
                continue;
            }
            let view = parse_entry(&name, &v, data)?;
            tensors.insert(name, view);
        }
        Ok(SafeTensors { tensors, metadata })
    }
}

fn parse_entry<'a>(
    name: &str,
    v: &serde_json::Value,
    data: &'a [u8],
) -> Result<TensorView<'a>, TowerError> {
    let bad = |what: &str| corrupt(format!("tensor \"{name}\": {what}"));
    let obj = v.as_object().ok_or_else(|| bad("entry is not an object"))?;
    let dtype_name = obj
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("missing dtype"))?;
    let dtype =
        Dtype::parse(dtype_name).ok_or_else(|| bad(&format!("unknown dtype {dtype_name}")))?;
    let shape = obj
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("missing shape"))?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| bad("shape is not a list of sizes"))?;
    let offsets = obj
        .get("data_offsets")
        .and_then(|o| o.as_array())
        .filter(|o| o.len() == 2)
        .and_then(|o| Some((o[0].as_u64()?, o[1].as_u64()?)))
        .ok_or_else(|| bad("data_offsets is not [begin, end]"))?;
    let (begin, end) = offsets;
    if begin > end || end > data.len() as u64 {
        return Err(bad(&format!(
            "data_offsets [{begin}, {end}] outside the {} data bytes (truncated?)",
            data.len()
        )));
    }
    let expected = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("shape overflows"))?;
    if (end - begin) as usize != expected {
        return Err(bad(&format!(
            "{} bytes for shape {shape:?} of {dtype_name} (expected {expected})",
            end - begin
        )));
    }
    Ok(TensorView {
        dtype,
        shape,
        data: &data[begin as usize..end as usize],
    })
}

/// IEEE half to single, exact for every input including subnormals, infinities and NaN.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: normalise into the single-precision exponent range.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Serialises tensors (always F32) and metadata: the trainer's output format, and the
/// tests' way to make files.
pub fn write_f32(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            METADATA_KEY.into(),
            serde_json::to_value(metadata).expect("strings"),
        );
    }
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let len = values.len() * 4;
        header.insert(
            (*name).into(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut json = serde_json::to_vec(&header).expect("serialisable");
    // Pad with spaces so the tensor data starts 8-byte aligned, as the reference writer does.
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, _, values) in tensors {
        for v in values.iter() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn round_trips_and_reads_metadata() {
        let mut meta = BTreeMap::new();
        meta.insert("k".to_string(), "v".to_string());
        let bytes = write_f32(
            &[
                ("a", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
                ("b", &[1], &[7.]),
            ],
            &meta,
        );
        let st = SafeTensors::parse(&bytes).unwrap();
        assert_eq!(st.metadata["k"], "v");
        assert_eq!(st.tensors["a"].shape, vec![2, 3]);
        assert_eq!(
            st.tensors["a"].to_f32().unwrap(),
            vec![1., 2., 3., 4., 5., 6.]
        );
        assert_eq!(st.tensors["b"].to_f32().unwrap(), vec![7.]);
    }

    #[test]
    fn truncation_and_garbage_are_errors_at_every_length() {
        let bytes = write_f32(&[("a", &[4, 4], &[0.5; 16])], &BTreeMap::new());
        for cut in 0..bytes.len() {
            assert!(SafeTensors::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(SafeTensors::parse(&huge).is_err());
        let mut flipped = bytes.clone();
        flipped[9] = b'#';
        assert!(SafeTensors::parse(&flipped).is_err());
    }

    #[test]
    fn wrong_byte_counts_and_dtypes_are_errors() {
        let header = br#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header);
        b.extend_from_slice(&[0; 8]);
        let e = SafeTensors::parse(&b).unwrap_err().to_string();
        assert!(e.contains("expected 12"), "{e}");
        let header = br#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#;
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header);
        b.extend_from_slice(&[0; 8]);
        let st = SafeTensors::parse(&b).unwrap();
        assert!(st.tensors["a"].to_f32().is_none());
        let header = br#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,8]}}"#;
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header);
        b.extend_from_slice(&[0; 8]);
        let e = SafeTensors::parse(&b).unwrap_err().to_string();
        assert!(e.contains("Q4"), "{e}");
    }
}
