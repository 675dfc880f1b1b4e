//! Payload encoding and decoding, for both msgpack and JSON.
//!
//! Encoding goes through serde (`rmp-serde` with structs as maps, or
//! `serde_json`) straight into the output buffer. Decoding parses a
//! [`Value`] and then reads typed parameters from it (see [`crate::params`]).

use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::EncodeError;
use crate::header::Encoding;
use crate::params::{from_value, PayloadError};
use crate::value::Value;

/// Appends `payload` serialised as `encoding` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(
    out: &mut BytesMut,
    encoding: Encoding,
    payload: &T,
) -> Result<(), EncodeError> {
    let mut writer = out.writer();
    match encoding {
        Encoding::MsgPack => {
            let mut ser = rmp_serde::Serializer::new(&mut writer).with_struct_map();
            payload.serialize(&mut ser).map_err(|e| EncodeError::Payload(e.to_string()))
        }
        Encoding::Json => serde_json::to_writer(&mut writer, payload).map_err(|e| EncodeError::Payload(e.to_string())),
    }
}

/// Serialises `payload` into a fresh buffer.
pub fn encode<T: Serialize + ?Sized>(encoding: Encoding, payload: &T) -> Result<BytesMut, EncodeError> {
    let mut out = BytesMut::new();
    encode_into(&mut out, encoding, payload)?;
    Ok(out)
}

/// Parses a payload into a [`Value`]; the root must be a map.
pub fn parse(encoding: Encoding, payload: &[u8]) -> Result<Value<'_>, PayloadError> {
    let value = match encoding {
        Encoding::MsgPack => Value::from_msgpack(payload)?,
        Encoding::Json => Value::from_json(payload)?,
    };
    match value {
        Value::Map(_) => Ok(value),
        other => Err(PayloadError::NotAMap(other.type_name())),
    }
}

/// Parses a payload and reads it as `T`.
pub fn decode<T: DeserializeOwned>(encoding: Encoding, payload: &[u8]) -> Result<T, PayloadError> {
    from_value(&parse(encoding, payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Sample {
        rid: i64,
        name: String,
        ok: bool,
    }

    #[test]
    fn structs_encode_as_maps_in_both_encodings() {
        let sample = Sample { rid: 7001, name: "x".into(), ok: true };
        let mp = encode(Encoding::MsgPack, &sample).unwrap();
        assert_eq!(mp[0], 0x83, "a fixmap of three entries");
        assert_eq!(decode::<Sample>(Encoding::MsgPack, &mp).unwrap(), sample);
        let js = encode(Encoding::Json, &sample).unwrap();
        assert_eq!(&js[..], br#"{"rid":7001,"name":"x","ok":true}"#);
        assert_eq!(decode::<Sample>(Encoding::Json, &js).unwrap(), sample);
    }

    #[test]
    fn non_map_roots_are_refused() {
        assert_eq!(parse(Encoding::MsgPack, &[0x01]).unwrap_err(), PayloadError::NotAMap("integer"));
        assert_eq!(parse(Encoding::Json, b"[1]").unwrap_err(), PayloadError::NotAMap("array"));
        assert!(matches!(parse(Encoding::Json, b"{"), Err(PayloadError::Malformed(_))));
    }
}
