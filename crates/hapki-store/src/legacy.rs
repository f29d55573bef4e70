//! A reader of the bincode 1 layout that schema 2 stored every value in, kept only to
//! migrate a schema-2 data directory when a node opens it ([`crate::Upgrade`]); nothing
//! is written in it any more.
//!
//! The layout is bincode 1's default (`bincode::serialize`), which is not
//! self-describing: the type says what comes next.
//!
//! | value | bytes |
//! | --- | --- |
//! | `bool` | one byte, 0 or 1 |
//! | integers, floats | fixed width, little-endian (`u32` is 4 bytes) |
//! | `char` | its UTF-8 bytes |
//! | string, byte string, sequence, map | the count as a `u64`, then the items (a map: key, value, …) |
//! | `Option` | one byte, 0 (`None`) or 1 (`Some`) then the value |
//! | struct, tuple, array `[T; N]` | the fields in order, with no count |
//! | enum | the variant's index as a `u32`, then its fields as a struct's |
//! | unit, unit struct | nothing |
//!
//! For example `Some(3u16)` is `01 03 00` and `"ab"` is `02 00 00 00 00 00 00 00 61 62`.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Serialize;

/// Why bytes are not a value of the type asked for.
#[derive(Debug, thiserror::Error)]
#[error("not a schema-2 value: {0}")]
pub struct LegacyError(String);

impl de::Error for LegacyError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        LegacyError(msg.to_string())
    }
}

impl From<LegacyError> for crate::StoreError {
    fn from(e: LegacyError) -> Self {
        crate::StoreError::Corrupt(e.to_string())
    }
}

/// Reads `bytes`, all of them, as one `T` in the schema-2 layout.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, LegacyError> {
    let mut reader = Reader { input: bytes };
    let value = T::deserialize(&mut reader)?;
    if !reader.input.is_empty() {
        return Err(LegacyError(format!("{} bytes after the value", reader.input.len())));
    }
    Ok(value)
}

/// Reads one `T` of schema 2 and writes it as this build does ([`crate::codec::encode`]).
pub fn recode<T: Serialize + DeserializeOwned>(legacy: &[u8]) -> Result<Vec<u8>, crate::StoreError> {
    Ok(crate::codec::encode(&from_slice::<T>(legacy)?))
}

struct Reader<'de> {
    input: &'de [u8],
}

impl<'de> Reader<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8], LegacyError> {
        if n > self.input.len() {
            return Err(LegacyError(format!("{n} bytes wanted, {} left", self.input.len())));
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LegacyError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, LegacyError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, LegacyError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A count of items, each of which takes at least one byte (true of every type
    /// schema 2 stored), so a damaged count fails here instead of looping.
    fn count(&mut self) -> Result<usize, LegacyError> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.input.len())
            .ok_or_else(|| LegacyError(format!("a count of {n} with {} bytes left", self.input.len())))
    }

    fn bytes(&mut self) -> Result<&'de [u8], LegacyError> {
        let n = self.count()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'de str, LegacyError> {
        std::str::from_utf8(self.bytes()?).map_err(|e| LegacyError(e.to_string()))
    }
}

/// The items of a sequence, tuple, struct or map: `left` more to read.
struct Items<'a, 'de> {
    reader: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = LegacyError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, LegacyError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = LegacyError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, LegacyError> {
        de::SeqAccess::next_element_seed(self, seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, LegacyError> {
        seed.deserialize(&mut *self.reader)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = LegacyError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), LegacyError> {
        let index = self.u32()?;
        let variant = seed.deserialize(IntoDeserializer::<LegacyError>::into_deserializer(index))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = LegacyError;

    fn unit_variant(self) -> Result<(), LegacyError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, LegacyError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, LegacyError> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, LegacyError> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

/// Fixed-width little-endian numbers: `$method` reads a `$ty` and calls `$visit`.
macro_rules! numbers {
    ($($method:ident $visit:ident $ty:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
            visitor.$visit(<$ty>::from_le_bytes(self.array()?))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = LegacyError;

    numbers! {
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
        deserialize_u128 visit_u128 u128;
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_i128 visit_i128 i128;
        deserialize_f32 visit_f32 f32;
        deserialize_f64 visit_f64 f64;
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, LegacyError> {
        Err(LegacyError("the schema-2 layout does not say what a value is".into()))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        match self.u8()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(LegacyError(format!("a bool of {b}"))),
        }
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        visitor.visit_u8(self.u8()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        let width = match self.input.first() {
            Some(b) if *b < 0x80 => 1,
            Some(b) if *b >> 5 == 0b110 => 2,
            Some(b) if *b >> 4 == 0b1110 => 3,
            _ => 4,
        };
        let s = std::str::from_utf8(self.take(width)?).map_err(|e| LegacyError(e.to_string()))?;
        visitor.visit_char(s.chars().next().expect("a valid UTF-8 sequence is one char"))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        match self.u8()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            b => Err(LegacyError(format!("an Option tag of {b}"))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, LegacyError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, LegacyError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        let left = self.count()?;
        visitor.visit_seq(Items { reader: self, left })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, LegacyError> {
        visitor.visit_seq(Items {
            reader: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, LegacyError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LegacyError> {
        let left = self.count()?;
        visitor.visit_map(Items { reader: self, left })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, LegacyError> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, LegacyError> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, LegacyError> {
        Err(LegacyError("the schema-2 layout names no fields".into()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, LegacyError> {
        Err(LegacyError("the schema-2 layout cannot skip a value".into()))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
