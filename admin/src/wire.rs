//! The one pass that fills a request body's wire type from its JSON object.
//!
//! Each body is declared once, as a wire type (`CreateKeyBody`, `UpdateKeyBody`,
//! `RotateBody`) that derives its OpenAPI schema (`utoipa::ToSchema`). The same type is
//! filled here, field by field, so that one 422 names *every* missing, unknown,
//! repeated, mistyped or invalid field, each under its own name: a derived
//! `Deserialize` would stop at the first.
//!
//! - A field's type says how its value is read ([`Field`]): `KeyName`, `Scopes`, a
//!   `RateLimit`, …, each with its own field-named errors.
//! - A field's slot says what absent and `null` mean ([`Slot`]): [`Required`], `Option`
//!   (absent or `null` is none), [`Change`] (PATCH: absent keeps, `null` removes) or
//!   [`Kept`] (PATCH: absent keeps, `null` is refused).
//! - Every field the wire type reads is known; any other field of the object is listed
//!   as unknown (at most 20, see [`json`](super::json)). [`wire_struct!`] declares a
//!   struct and its filling together, so the fields read are the struct's own.

use std::time::SystemTime;

use serde_json::Value;

use super::json::{Object, list_fields};
use super::problem::{AdminError, FieldError};
use tower_apikey::manager::ExpiryError;

/// What checking a field needs besides its value: the manager's expiry rule (its clock
/// and the longest lifetime), for `expires_at`.
#[derive(Clone, Copy, Default)]
pub(super) struct Context<'a> {
    pub(super) expiry: Option<&'a dyn Fn(SystemTime) -> Result<SystemTime, ExpiryError>>,
}

/// A type a present, non-`null` field is read as, adding a field-named error for each
/// problem (`None` then).
pub(super) trait Field: Sized {
    /// What to send, after "`field` is required: ", when a [`Required`] field is absent
    /// or `null`.
    const REQUIRED: &'static str = "";

    fn read(
        field: &str,
        value: &Value,
        cx: &Context<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self>;
}

/// What absent and `null` mean for a field: `None` when the field adds an error.
pub(super) trait Slot: Sized {
    fn fill(
        field: &str,
        value: Option<&Value>,
        cx: &Context<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self>;
}

/// A field that must be given, and not as `null`.
#[derive(Debug)]
pub(super) struct Required<T>(pub(super) T);

impl<T> std::ops::Deref for Required<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A PATCH field: `None` (absent) keeps it, `Some(None)` (`null`) removes it.
#[derive(Debug)]
pub(super) struct Change<T>(pub(super) Option<Option<T>>);

/// A PATCH field that cannot be removed: `None` (absent) keeps it; `null` is refused.
#[derive(Debug)]
pub(super) struct Kept<T>(pub(super) Option<T>);

impl<T: Field> Slot for Required<T> {
    fn fill(
        field: &str,
        value: Option<&Value>,
        cx: &Context<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        match value {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(
                    field,
                    format!("{field} is required: {}", T::REQUIRED),
                ));
                None
            }
            Some(value) => T::read(field, value, cx, errors).map(Self),
        }
    }
}

impl<T: Field> Slot for Option<T> {
    fn fill(
        field: &str,
        value: Option<&Value>,
        cx: &Context<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        match value {
            None | Some(Value::Null) => Some(None),
            Some(value) => T::read(field, value, cx, errors).map(Some),
        }
    }
}

impl<T: Field> Slot for Change<T> {
    fn fill(
        field: &str,
        value: Option<&Value>,
        cx: &Context<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        match value {
            None => Some(Self(None)),
            Some(Value::Null) => Some(Self(Some(None))),
            Some(value) => T::read(field, value, cx, errors).map(|v| Self(Some(Some(v)))),
        }
    }
}

impl<T: Field> Slot for Kept<T> {
    fn fill(
        field: &str,
        value: Option<&Value>,
        cx: &Context<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        match value {
            None => Some(Self(None)),
            Some(Value::Null) => {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "{field} cannot be removed; send a new {field}, or leave {field} out to keep it"
                    ),
                ));
                None
            }
            Some(value) => T::read(field, value, cx, errors).map(|v| Self(Some(v))),
        }
    }
}

/// A request body's wire type.
pub(super) trait Wire: Sized {
    /// Fields that are known but refused whatever their value, and why (PATCH's
    /// `scopes`): named as themselves, not as unknown.
    const REFUSED: &'static [(&'static str, &'static str)] = &[];

    /// Reads every field through `fields`; `None` when any adds an error.
    fn fill(fields: &mut Fields<'_>) -> Option<Self>;
}

/// A body's object as its wire type reads it: the fields read so far, and the errors.
pub(super) struct Fields<'a> {
    object: &'a Object,
    cx: Context<'a>,
    read: Vec<&'static str>,
    errors: Vec<FieldError>,
}

impl Fields<'_> {
    /// The field `name`, as its slot reads it; the name becomes known.
    pub(super) fn read<T: Slot>(&mut self, name: &'static str) -> Option<T> {
        self.read.push(name);
        T::fill(name, self.object.get(name), &self.cx, &mut self.errors)
    }

    /// A problem of several fields together (after they are read).
    pub(super) fn refuse(&mut self, error: FieldError) {
        self.errors.push(error);
    }
}

/// Fills `W` from `object` in one pass: every field's errors, then the refused fields,
/// then the unknown ones, all in one 422.
pub(super) fn fill<W: Wire>(object: &Object, cx: Context<'_>) -> Result<W, AdminError> {
    let mut fields = Fields {
        object,
        cx,
        read: Vec::new(),
        errors: Vec::new(),
    };
    let wire = W::fill(&mut fields);
    let Fields {
        mut read,
        mut errors,
        ..
    } = fields;
    for &(name, why) in W::REFUSED {
        if object.contains_key(name) {
            errors.push(FieldError::new(name, why));
        }
        read.push(name);
    }
    let unknown: Vec<&String> = object
        .keys()
        .filter(|name| !read.contains(&name.as_str()))
        .collect();
    let known = read.join(", ");
    list_fields(unknown.into_iter(), &mut errors, |_| {
        format!("unknown field; the fields are {known}")
    });
    match wire {
        Some(wire) if errors.is_empty() => Ok(wire),
        _ => Err(AdminError::Invalid(errors)),
    }
}

/// Declares a body's wire struct and its [`Wire`] filling together: every field is read,
/// in the order declared, under its own name, through its type's [`Slot`]; after the
/// struct, `refused: &[(name, why)];` sets [`Wire::REFUSED`].
macro_rules! wire_struct {
    (
        $(#[$outer:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$inner:meta])* $field_vis:vis $field:ident: $ty:ty ),* $(,)?
        }
        $(refused: $refused:expr;)?
    ) => {
        $(#[$outer])*
        $vis struct $name {
            $( $(#[$inner])* $field_vis $field: $ty ),*
        }

        impl $crate::wire::Wire for $name {
            $(const REFUSED: &'static [(&'static str, &'static str)] = $refused;)?

            fn fill(fields: &mut $crate::wire::Fields<'_>) -> Option<Self> {
                // Every field is read before any is checked, so each adds its errors.
                $( let $field = fields.read::<$ty>(stringify!($field)); )*
                Some(Self { $( $field: $field? ),* })
            }
        }
    };
}

pub(super) use wire_struct;
