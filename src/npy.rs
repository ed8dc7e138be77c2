//! Reading and writing numpy `.npy` files (format versions 1–3, little-endian, C or
//! Fortran order) for `urpe predict`.

use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// An array read from a `.npy` file: floats stay floats, every integer type becomes i64.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyArray {
    /// `<f4` data.
    Float32(ArrayD<f32>),
    /// `<f8` data.
    Float64(ArrayD<f64>),
    /// Any signed or unsigned integer data (`i1`…`i8`, `u1`…`u8`).
    Int(ArrayD<i64>),
}

impl NpyArray {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyArray::Float32(a) => a.shape(),
            NpyArray::Float64(a) => a.shape(),
            NpyArray::Int(a) => a.shape(),
        }
    }

    /// numpy's name of the element type as read.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyArray::Float32(_) => "float32",
            NpyArray::Float64(_) => "float64",
            NpyArray::Int(_) => "integer",
        }
    }
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
    Some(rest[..end].trim())
}

fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

/// Reads a `.npy` file; every problem names the file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = crate::io::read(path)?;
    let bad = |msg: &str| Error::file(path, format!("{msg} (expected a numpy .npy file written by numpy.save)"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file: the magic string \\x93NUMPY is missing"));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12),
        v => return Err(bad(&format!("unsupported .npy format version {v}"))),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or unreadable header"))?;
    let descr = header_value(header, "descr").ok_or_else(|| bad("the header has no 'descr'"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran =
        header_value(header, "fortran_order").ok_or_else(|| bad("the header has no 'fortran_order'"))? == "True";
    let shape =
        header_value(header, "shape").and_then(parse_shape).ok_or_else(|| bad("the header's 'shape' is unreadable"))?;
    let count: usize = shape.iter().product();
    let (endian, kind) = descr.split_at(1);
    if endian == ">" && kind != "i1" && kind != "u1" {
        return Err(Error::file(
            path,
            format!("big-endian data ({descr}) is not supported; save it little-endian: x.astype('<{kind}')"),
        ));
    }
    let size: usize = kind[1..].parse().map_err(|_| bad(&format!("unsupported dtype {descr}")))?;
    let data = &bytes[data_start..];
    if data.len() != count * size {
        return Err(Error::file(
            path,
            format!(
                "truncated or corrupt: shape {shape:?} of {descr} needs {} data bytes, the file has {}",
                count * size,
                data.len()
            ),
        ));
    }
    let chunks = data.chunks_exact(size);
    macro_rules! array {
        ($t:ty, $conv:expr) => {{
            let v: Vec<$t> = chunks.map($conv).collect();
            let dim = IxDyn(&shape);
            if fortran { ArrayD::from_shape_vec(dim.f(), v) } else { ArrayD::from_shape_vec(dim, v) }
                .map_err(|e| bad(&format!("shape {shape:?} does not fit the data: {e}")))?
        }};
    }
    Ok(match kind {
        "f4" => NpyArray::Float32(array!(f32, |c: &[u8]| f32::from_le_bytes(c.try_into().expect("4 bytes")))),
        "f8" => NpyArray::Float64(array!(f64, |c: &[u8]| f64::from_le_bytes(c.try_into().expect("8 bytes")))),
        "i1" => NpyArray::Int(array!(i64, |c: &[u8]| c[0] as i8 as i64)),
        "u1" => NpyArray::Int(array!(i64, |c: &[u8]| c[0] as i64)),
        "i2" => NpyArray::Int(array!(i64, |c: &[u8]| i16::from_le_bytes([c[0], c[1]]) as i64)),
        "u2" => NpyArray::Int(array!(i64, |c: &[u8]| u16::from_le_bytes([c[0], c[1]]) as i64)),
        "i4" => NpyArray::Int(array!(i64, |c: &[u8]| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)),
        "u4" => NpyArray::Int(array!(i64, |c: &[u8]| u32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)),
        "i8" => NpyArray::Int(array!(i64, |c: &[u8]| i64::from_le_bytes(c.try_into().expect("8 bytes")))),
        "u8" => NpyArray::Int(array!(i64, |c: &[u8]| {
            i64::try_from(u64::from_le_bytes(c.try_into().expect("8 bytes"))).unwrap_or(i64::MAX)
        })),
        _ => {
            return Err(Error::file(
                path,
                format!("unsupported dtype {descr}: use float32 for real inputs or an integer type for token ids"),
            ));
        }
    })
}

/// The bytes of a little-endian float32 `.npy` file (format 1.0, C order).
pub fn npy_f32_bytes(shape: &[usize], values: impl Iterator<Item = f32>) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // pad so that magic + version + length + header + newline is a multiple of 64
    while !(MAGIC.len() + 2 + 2 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(128 + 4 * shape.iter().product::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    values.for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}
