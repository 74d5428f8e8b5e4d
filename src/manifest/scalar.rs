//! Scalars exactly as written. YAML 1.1 reads `no` as false, `1.10` as 1.1 and `010` as 10;
//! a value that ends up in an environment variable, a label or a name must keep the text the
//! user typed. The parser types plain scalars before a visitor sees them, so the text of a
//! typed scalar is cut from the document by its span: `parse` lends the document's text for the
//! time it deserializes it.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_saphyr::{Location, Spanned};

thread_local! {
    static SOURCE: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

/// Runs `f` with `text` as the document that spans point into.
pub(crate) fn with_source<R>(text: &str, f: impl FnOnce() -> R) -> R {
    let previous = SOURCE.with(|s| s.replace(Some(Rc::from(text))));
    let out = f();
    SOURCE.with(|s| *s.borrow_mut() = previous);
    out
}

/// The text at `loc` in the document being parsed, if it is a single plain token.
pub(crate) fn written_at(loc: &Location) -> Option<String> {
    let span = loc.span();
    let (start, len) = (span.byte_offset()? as usize, span.byte_len()? as usize);
    SOURCE.with(|s| {
        let text = s.borrow();
        let raw = text.as_deref()?.get(start..start.checked_add(len)?)?.trim();
        // An alias's span is the alias (`*hc`), not the text it stands for: the typed value
        // prints for it. An anchor's (`&n 3`) starts with the anchor's name.
        if raw.starts_with('*') {
            return None;
        }
        let raw = match raw.strip_prefix('&') {
            Some(anchored) => anchored.split_once(char::is_whitespace)?.1.trim(),
            None => raw,
        };
        (!raw.is_empty() && !raw.contains(['\n', '#', '"', '\''])).then(|| raw.to_owned())
    })
}

/// The mapping form a scalar-or-mapping value may take instead (read by its own
/// `Deserialize`), with what the whole expects.
pub(crate) trait MapForm {
    const EXPECTING: &'static str;
}

/// No mapping form: only scalars are accepted.
pub(crate) enum NoMap {}

impl MapForm for NoMap {
    const EXPECTING: &'static str = "a string, number or boolean";
}

impl<'de> Deserialize<'de> for NoMap {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::Map,
            &Self::EXPECTING,
        ))
    }
}

/// A scalar as written, or the mapping form `M`.
pub(crate) enum ScalarOrMap<M> {
    Scalar(String),
    Map(M),
}

enum Read<M> {
    Text(String),
    /// A typed scalar (bool or number), with how it prints if its text cannot be found.
    Typed(String),
    Map(M),
}

impl<'de, M: MapForm + Deserialize<'de>> Deserialize<'de> for Read<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<M>(PhantomData<M>);
        impl<'de, M: MapForm + Deserialize<'de>> Visitor<'de> for V<M> {
            type Value = Read<M>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(M::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Read<M>, E> {
                Ok(Read::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Read<M>, E> {
                Ok(Read::Typed(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Read<M>, E> {
                Ok(Read::Typed(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Read<M>, E> {
                Ok(Read::Typed(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Read<M>, E> {
                Ok(Read::Typed(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Read<M>, A::Error> {
                M::deserialize(de::value::MapAccessDeserializer::new(map)).map(Read::Map)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, M: MapForm + Deserialize<'de>> Deserialize<'de> for ScalarOrMap<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let read = Spanned::<Read<M>>::deserialize(d)?;
        Ok(match read.value {
            Read::Text(t) => ScalarOrMap::Scalar(t),
            Read::Typed(shown) => {
                ScalarOrMap::Scalar(written_at(&read.referenced).unwrap_or(shown))
            }
            Read::Map(m) => ScalarOrMap::Map(m),
        })
    }
}

/// A scalar exactly as written (`no`, `1.10` and `010` stay text).
pub(crate) fn exact<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match ScalarOrMap::<NoMap>::deserialize(d)? {
        ScalarOrMap::Scalar(s) => Ok(s),
        ScalarOrMap::Map(never) => match never {},
    }
}
