//! One JSON object's fields, taken out one by one with the §5 rules.
//!
//! Lines are parsed with serde_json into a key → value map (rejecting
//! duplicate keys at any depth), then each field is extracted explicitly so
//! that every failure names its field.

use std::cell::RefCell;
use std::fmt;

use engine::{Dec8, Fixed8, Symbol};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::{Field, FormatError};

/// The fields of one JSON object, by key.
pub(crate) struct Object<'v> {
    fields: &'v Map<String, Value>,
    /// Set for the elements of a list (`tiers[2]`), to name fields fully.
    list: Option<(&'static str, usize)>,
}

/// Parses one line into the top-level object's fields.
pub(crate) fn parse_object(line: &str) -> Result<Map<String, Value>, FormatError> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let parsed = StrictValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(FormatError::NotObject(json_type(&other))),
        Err(e) => {
            if let Some(key) = duplicate.into_inner() {
                return Err(FormatError::DuplicateKey(key));
            }
            // serde_json appends " at line L column C"; the line is always 1
            // here and the reader names the file's line itself.
            let mut message = e.to_string();
            if let Some(at) = message.rfind(" at line ") {
                message.truncate(at);
            }
            Err(FormatError::NotJson {
                message,
                column: e.column(),
            })
        }
    }
}

impl<'v> Object<'v> {
    pub(crate) fn new(fields: &'v Map<String, Value>) -> Object<'v> {
        Object { fields, list: None }
    }

    fn field(&self, name: &'static str) -> Field {
        Field {
            list: self.list,
            name,
        }
    }

    fn get(&self, name: &'static str) -> Result<&'v Value, FormatError> {
        self.fields
            .get(name)
            .ok_or_else(|| FormatError::MissingField(self.field(name)))
    }

    fn wrong_type(&self, name: &'static str, expected: &'static str, found: &Value) -> FormatError {
        FormatError::WrongType {
            field: self.field(name),
            expected,
            found: json_type(found),
        }
    }

    /// A field that may be absent (`src_stream`, `src_seq`).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    pub(crate) fn str(&self, name: &'static str) -> Result<&'v str, FormatError> {
        match self.get(name)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(name, "a string", other)),
        }
    }

    pub(crate) fn bool(&self, name: &'static str) -> Result<bool, FormatError> {
        match self.get(name)? {
            Value::Bool(b) => Ok(*b),
            other => Err(self.wrong_type(name, "a boolean", other)),
        }
    }

    /// An unsigned JSON integer no larger than `max`.
    fn uint(&self, name: &'static str, max: u64) -> Result<u64, FormatError> {
        let number = match self.get(name)? {
            Value::Number(n) => n,
            other => return Err(self.wrong_type(name, "an integer", other)),
        };
        if let Some(value) = number.as_u64() {
            if value <= max {
                return Ok(value);
            }
        } else if number.as_i64().is_none() && !is_huge_whole(number) {
            // A float such as 1.5 or 1e3: not an integer at all.
            return Err(FormatError::NotInteger {
                field: self.field(name),
                found: number.to_string(),
            });
        }
        Err(FormatError::IntegerOutOfRange {
            field: self.field(name),
            found: number.to_string(),
            max,
        })
    }

    pub(crate) fn u64(&self, name: &'static str) -> Result<u64, FormatError> {
        self.uint(name, u64::MAX)
    }

    pub(crate) fn u32(&self, name: &'static str) -> Result<u32, FormatError> {
        let value = self.uint(name, u64::from(u32::MAX))?;
        // Cannot fail: `uint` checked the bound.
        Ok(u32::try_from(value).unwrap_or(u32::MAX))
    }

    fn decimal_text(&self, name: &'static str) -> Result<&'v str, FormatError> {
        match self.get(name)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(name, "a decimal in a JSON string", other)),
        }
    }

    /// A wire decimal (PROTOCOL.md §5 grammar, within the Fixed8 range).
    pub(crate) fn fixed8(&self, name: &'static str) -> Result<Fixed8, FormatError> {
        let text = self.decimal_text(name)?;
        Fixed8::parse(text).map_err(|reason| FormatError::BadDecimal {
            field: self.field(name),
            reason,
            found: text.to_owned(),
        })
    }

    /// An engine decimal (outputs: same grammar, the engine's range).
    pub(crate) fn dec8(&self, name: &'static str) -> Result<Dec8, FormatError> {
        let text = self.decimal_text(name)?;
        Dec8::parse(text).map_err(|reason| FormatError::BadDecimal {
            field: self.field(name),
            reason,
            found: text.to_owned(),
        })
    }

    pub(crate) fn symbol(&self, name: &'static str) -> Result<Symbol, FormatError> {
        let text = self.str(name)?;
        Symbol::new(text).map_err(|reason| FormatError::BadSymbol {
            field: self.field(name),
            reason,
            found: text.to_owned(),
        })
    }

    /// A string naming one of a fixed set of values.
    pub(crate) fn name_of<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        from_name: impl Fn(&str) -> Option<T>,
    ) -> Result<T, FormatError> {
        let text = self.str(name)?;
        from_name(text).ok_or_else(|| FormatError::UnknownValue {
            field: self.field(name),
            found: text.to_owned(),
            expected,
        })
    }

    /// A list of objects, each parsed by `element`.
    pub(crate) fn list<T>(
        &self,
        name: &'static str,
        element: impl Fn(&Object<'_>) -> Result<T, FormatError>,
    ) -> Result<Vec<T>, FormatError> {
        let items = match self.get(name)? {
            Value::Array(items) => items,
            other => return Err(self.wrong_type(name, "a list of objects", other)),
        };
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let fields = match item {
                Value::Object(map) => map,
                other => {
                    return Err(FormatError::WrongType {
                        field: Field {
                            list: Some((name, index)),
                            name: "",
                        },
                        expected: "an object",
                        found: json_type(other),
                    })
                }
            };
            out.push(element(&Object {
                fields,
                list: Some((name, index)),
            })?);
        }
        Ok(out)
    }
}

/// A float that is a whole number too large for u64/i64: an integer out of
/// range rather than a non-integer (serde_json stores 2⁶⁴ as a float).
fn is_huge_whole(number: &serde_json::Number) -> bool {
    number.as_f64().is_some_and(|f| {
        f.is_finite() && f.fract() == 0.0 && f.abs() >= 9_223_372_036_854_775_808.0
    })
}

/// "a string", "a number", ... for messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Builds a `Value` like serde_json's own, but fails on a duplicate key at
/// any depth (serde_json's `Value` silently keeps the last one), recording
/// the key in `duplicate`.
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::from(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::from(u))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so this is never Null.
        Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            if fields.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom("duplicate key"));
            }
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}
