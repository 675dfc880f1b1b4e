//! A borrowed, dynamically typed payload value, parsed from msgpack or JSON.
//!
//! Quests are parsed into a [`Value`] first and then into a typed struct (see
//! [`crate::params`]). The two steps let one lenient parser serve both
//! encodings and let errors name the offending key. Integers of every
//! msgpack width and signedness collapse into [`Value::Int`] (or
//! [`Value::UInt`] above `i64::MAX`), so Python's unsigned markers and Go's
//! signed ones read the same.

use std::borrow::Cow;

use crate::params::PayloadError;

/// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// One payload value. Strings and binaries borrow from the frame when parsed
/// from msgpack.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `nil` / `null`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// Any integer that fits in `i64`, whatever its wire width.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A float32 or float64.
    Float(f64),
    /// A msgpack `str` (raw bytes; usually, not necessarily, UTF-8).
    Str(Cow<'a, [u8]>),
    /// A msgpack `bin`.
    Bin(Cow<'a, [u8]>),
    /// An array.
    Array(Vec<Value<'a>>),
    /// A map, in wire order.
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// A msgpack extension value (type, data).
    Ext(i8, Cow<'a, [u8]>),
}

impl<'a> Value<'a> {
    /// Parses exactly one msgpack value from `input`; trailing bytes are an error.
    pub fn from_msgpack(input: &'a [u8]) -> Result<Self, PayloadError> {
        let mut reader = Reader { input, pos: 0 };
        let value = reader.value(0)?;
        if reader.pos != input.len() {
            return Err(PayloadError::Malformed(format!(
                "{} trailing bytes after the msgpack value",
                input.len() - reader.pos
            )));
        }
        Ok(value)
    }

    /// Parses a JSON document.
    pub fn from_json(input: &[u8]) -> Result<Value<'static>, PayloadError> {
        serde_json::from_slice(input).map_err(|e| PayloadError::Malformed(format!("invalid JSON: {e}")))
    }

    /// The text of a `str` or `bin` value, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(b) | Self::Bin(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Nil => "nil",
            Self::Bool(_) => "bool",
            Self::Int(_) | Self::UInt(_) => "integer",
            Self::Float(_) => "float",
            Self::Str(_) => "string",
            Self::Bin(_) => "binary",
            Self::Array(_) => "array",
            Self::Map(_) => "map",
            Self::Ext(..) => "extension",
        }
    }
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn truncated(&self) -> PayloadError {
        PayloadError::Malformed(format!("msgpack value truncated at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len());
        let end = end.ok_or_else(|| self.truncated())?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(self.array::<1>()?[0])
    }

    fn len(&mut self, width: usize) -> Result<usize, PayloadError> {
        Ok(match width {
            1 => usize::from(self.u8()?),
            2 => usize::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?) as usize,
        })
    }

    fn unsigned(v: u64) -> Value<'a> {
        i64::try_from(v).map_or(Value::UInt(v), Value::Int)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, PayloadError> {
        if depth > MAX_DEPTH {
            return Err(PayloadError::Malformed(format!("nesting deeper than {MAX_DEPTH}")));
        }
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.seq(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => Value::Str(Cow::Borrowed(self.take(usize::from(marker & 0x1f))?)),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (marker - 0xc4))?;
                Value::Bin(Cow::Borrowed(self.take(n)?))
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (marker - 0xc7))?;
                let ty = self.u8()? as i8;
                Value::Ext(ty, Cow::Borrowed(self.take(n)?))
            }
            0xca => Value::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Value::Float(f64::from_be_bytes(self.array()?)),
            0xcc => Value::Int(i64::from(self.u8()?)),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.array()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.array()?))),
            0xcf => Self::unsigned(u64::from_be_bytes(self.array()?)),
            0xd0 => Value::Int(i64::from(self.u8()? as i8)),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => {
                let n = 1usize << (marker - 0xd4);
                let ty = self.u8()? as i8;
                Value::Ext(ty, Cow::Borrowed(self.take(n)?))
            }
            0xd9..=0xdb => {
                let n = self.len(1 << (marker - 0xd9))?;
                Value::Str(Cow::Borrowed(self.take(n)?))
            }
            0xdc | 0xdd => {
                let n = self.len(if marker == 0xdc { 2 } else { 4 })?;
                self.seq(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.len(if marker == 0xde { 2 } else { 4 })?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            0xc1 => {
                return Err(PayloadError::Malformed(format!("reserved msgpack marker 0xc1 at byte {}", self.pos - 1)))
            }
        })
    }

    /// Every element takes at least one byte, so the remaining input bounds
    /// how much we pre-allocate for a claimed length.
    fn capacity(&self, claimed: usize, min_bytes_each: usize) -> usize {
        claimed.min((self.input.len() - self.pos) / min_bytes_each)
    }

    fn seq(&mut self, n: usize, depth: usize) -> Result<Value<'a>, PayloadError> {
        let mut items = Vec::with_capacity(self.capacity(n, 1));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value<'a>, PayloadError> {
        let mut entries = Vec::with_capacity(self.capacity(n, 2));
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// JSON payloads are parsed straight into [`Value`] through serde.
impl<'de> serde::Deserialize<'de> for Value<'static> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OwnedValueVisitor)
    }
}

struct OwnedValueVisitor;

impl<'de> serde::de::Visitor<'de> for OwnedValueVisitor {
    type Value = Value<'static>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Reader::unsigned(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v.as_bytes().to_vec())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v.into_bytes())))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(Value::Bin(Cow::Owned(v.to_vec())))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value<'static>>()? {
            entries.push((Value::Str(Cow::Owned(k.into_bytes())), v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(text.as_bytes()))
    }

    #[test]
    fn every_integer_width_reads_the_same() {
        let encodings: &[&[u8]] = &[
            &[0x7f],
            &[0xcc, 0x7f],
            &[0xcd, 0x00, 0x7f],
            &[0xce, 0, 0, 0, 0x7f],
            &[0xcf, 0, 0, 0, 0, 0, 0, 0, 0x7f],
            &[0xd0, 0x7f],
            &[0xd1, 0x00, 0x7f],
            &[0xd2, 0, 0, 0, 0x7f],
            &[0xd3, 0, 0, 0, 0, 0, 0, 0, 0x7f],
        ];
        for bytes in encodings {
            assert_eq!(Value::from_msgpack(bytes).unwrap(), Value::Int(127), "{bytes:02x?}");
        }
        assert_eq!(Value::from_msgpack(&[0xff]).unwrap(), Value::Int(-1));
        assert_eq!(Value::from_msgpack(&[0xd0, 0x80]).unwrap(), Value::Int(-128));
        assert_eq!(
            Value::from_msgpack(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            Value::UInt(u64::MAX)
        );
    }

    #[test]
    fn str_and_bin_both_read_as_text() {
        let str8 = Value::from_msgpack(&[0xd9, 0x02, b'h', b'i']).unwrap();
        let bin8 = Value::from_msgpack(&[0xc4, 0x02, b'h', b'i']).unwrap();
        assert_eq!(str8, s("hi"));
        assert_eq!(str8.as_str(), Some("hi"));
        assert_eq!(bin8.as_str(), Some("hi"));
    }

    #[test]
    fn maps_arrays_and_scalars() {
        // {"a": [nil, true, 1.5], "b": false}
        let bytes = [0x82, 0xa1, b'a', 0x93, 0xc0, 0xc3, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa1, b'b', 0xc2];
        let value = Value::from_msgpack(&bytes).unwrap();
        assert_eq!(
            value,
            Value::Map(vec![
                (s("a"), Value::Array(vec![Value::Nil, Value::Bool(true), Value::Float(1.5)])),
                (s("b"), Value::Bool(false)),
            ])
        );
    }

    #[test]
    fn truncated_and_trailing_input_is_malformed() {
        assert!(matches!(Value::from_msgpack(&[0xcd, 0x01]), Err(PayloadError::Malformed(_))));
        assert!(matches!(Value::from_msgpack(&[0x81, 0xa1]), Err(PayloadError::Malformed(_))));
        assert!(matches!(Value::from_msgpack(&[0x80, 0x80]), Err(PayloadError::Malformed(_))));
        assert!(matches!(Value::from_msgpack(&[]), Err(PayloadError::Malformed(_))));
        assert!(matches!(Value::from_msgpack(&[0xc1]), Err(PayloadError::Malformed(_))));
    }

    #[test]
    fn huge_claimed_lengths_do_not_allocate() {
        // array32 claiming 4 billion elements, with nothing behind it.
        let err = Value::from_msgpack(&[0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, PayloadError::Malformed(_)));
        let err = Value::from_msgpack(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]).unwrap_err();
        assert!(matches!(err, PayloadError::Malformed(_)));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let bytes = vec![0x91; 10_000];
        assert!(matches!(Value::from_msgpack(&bytes), Err(PayloadError::Malformed(_))));
    }

    #[test]
    fn json_parses_into_the_same_shape() {
        let value = Value::from_json(br#"{"rid": 7001, "big": 18446744073709551615, "t": "x"}"#).unwrap();
        let Value::Map(entries) = value else { panic!("expected a map") };
        assert_eq!(entries[0].1, Value::Int(7001));
        assert_eq!(entries[1].1, Value::UInt(u64::MAX));
        assert_eq!(entries[2].1.as_str(), Some("x"));
    }
}
