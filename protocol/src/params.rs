//! Typed parameters from a [`Value`] map, with errors that name the key.
//!
//! A serde `Deserializer` over [`Value`] feeds any `#[derive(Deserialize)]`
//! struct. Because the map walker knows the key whose value it is reading, a
//! wrong type becomes `PayloadError::Invalid { key: "rid", .. }` (code 10010)
//! and a missing field `PayloadError::Missing { key: "rid" }` (code 10009).
//! Unknown keys are ignored, as the RTM SDKs add some (e.g. `version`).

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

pub use crate::error::PayloadError;
use crate::value::Value;

/// Puts `segment` in front of an error's key path.
fn within(error: PayloadError, segment: &str) -> PayloadError {
    let join = |key: String| {
        if key.is_empty() {
            segment.to_owned()
        } else if key.starts_with('[') {
            format!("{segment}{key}")
        } else {
            format!("{segment}.{key}")
        }
    };
    match error {
        PayloadError::Missing { key } => PayloadError::Missing { key: join(key) },
        PayloadError::Invalid { key, reason } => PayloadError::Invalid { key: join(key), reason },
        other => other,
    }
}

impl de::Error for PayloadError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Invalid { key: String::new(), reason: msg.to_string() }
    }

    fn missing_field(field: &'static str) -> Self {
        Self::Missing { key: field.to_owned() }
    }
}

/// Reads `T` from a parsed payload. The root must be a map.
pub fn from_value<T: DeserializeOwned>(value: &Value<'_>) -> Result<T, PayloadError> {
    if !matches!(value, Value::Map(_)) {
        return Err(PayloadError::NotAMap(value.type_name()));
    }
    T::deserialize(ValueDeserializer(value))
}

/// A serde deserializer over a borrowed [`Value`].
#[derive(Clone, Copy)]
pub struct ValueDeserializer<'v, 'a>(pub &'v Value<'a>);

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_, '_> {
    type Error = PayloadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        match self.0 {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => visitor.visit_str(text),
                Err(_) => visitor.visit_bytes(bytes),
            },
            Value::Bin(bytes) | Value::Ext(_, bytes) => visitor.visit_bytes(bytes),
            Value::Array(items) => visitor.visit_seq(SeqWalker { items: items.iter(), index: 0 }),
            Value::Map(entries) => visitor.visit_map(MapWalker { entries: entries.iter(), current: None }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        match self.0 {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum identifier
    }
}

struct SeqWalker<'v, 'a> {
    items: std::slice::Iter<'v, Value<'a>>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for SeqWalker<'_, '_> {
    type Error = PayloadError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, PayloadError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(ValueDeserializer(item)).map(Some).map_err(|e| within(e, &format!("[{index}]")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapWalker<'v, 'a> {
    entries: std::slice::Iter<'v, (Value<'a>, Value<'a>)>,
    current: Option<&'v (Value<'a>, Value<'a>)>,
}

impl<'de> de::MapAccess<'de> for MapWalker<'_, '_> {
    type Error = PayloadError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, PayloadError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        // Map keys are read as written; a non-text key simply matches no field.
        let key = match &entry.0 {
            Value::Str(bytes) | Value::Bin(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => seed.deserialize(text.into_deserializer()),
                Err(_) => seed.deserialize(ValueDeserializer(&entry.0)),
            },
            other => seed.deserialize(ValueDeserializer(other)),
        };
        key.map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PayloadError> {
        let (key, value) = self.current.take().ok_or_else(|| de::Error::custom("value requested before its key"))?;
        seed.deserialize(ValueDeserializer(value)).map_err(|e| {
            let name = match key.as_str() {
                Some(name) => name.to_owned(),
                None => format!("<{} key>", key.type_name()),
            };
            within(e, &name)
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Params {
        rid: i64,
        uids: Vec<i64>,
        #[serde(default)]
        oinfo: Option<String>,
        btime: i32,
    }

    fn json(text: &str) -> Result<Params, PayloadError> {
        from_value(&Value::from_json(text.as_bytes()).unwrap())
    }

    #[test]
    fn reads_a_full_struct_and_ignores_unknown_keys() {
        let p = json(r#"{"rid": 1, "uids": [2, 3], "oinfo": "x", "btime": 5, "extra": {"a": []}}"#).unwrap();
        assert_eq!(p, Params { rid: 1, uids: vec![2, 3], oinfo: Some("x".into()), btime: 5 });
    }

    #[test]
    fn missing_key_is_10009_and_named() {
        let err = json(r#"{"uids": [], "btime": 1}"#).unwrap_err();
        assert_eq!(err, PayloadError::Missing { key: "rid".into() });
        assert_eq!(err.code(), ErrorCode::ProtoKeyNotFound);
        assert_eq!(err.to_string(), "missing parameter 'rid'");
    }

    #[test]
    fn wrong_type_is_10010_and_named() {
        let err = json(r#"{"rid": "seven", "uids": [], "btime": 1}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ProtoTypeConvert);
        assert!(matches!(&err, PayloadError::Invalid { key, .. } if key == "rid"), "{err}");
    }

    #[test]
    fn nested_errors_carry_the_path() {
        let err = json(r#"{"rid": 1, "uids": [1, "x"], "btime": 1}"#).unwrap_err();
        assert!(matches!(&err, PayloadError::Invalid { key, .. } if key == "uids[1]"), "{err}");
    }

    #[test]
    fn out_of_range_integer_is_10010() {
        let err = json(r#"{"rid": 1, "uids": [], "btime": 5000000000}"#).unwrap_err();
        assert!(matches!(&err, PayloadError::Invalid { key, .. } if key == "btime"), "{err}");
    }

    #[test]
    fn root_must_be_a_map() {
        let err = from_value::<Params>(&Value::Array(vec![])).unwrap_err();
        assert_eq!(err, PayloadError::NotAMap("array"));
        assert_eq!(err.code(), ErrorCode::ProtoMapValue);
    }

    #[test]
    fn nil_reads_as_absent_option() {
        let p = json(r#"{"rid": 1, "uids": [], "oinfo": null, "btime": 0}"#).unwrap();
        assert_eq!(p.oinfo, None);
    }
}
