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

/// One field being read: its name, what its checks need, and where its errors go.
pub(super) struct At<'a> {
    pub(super) field: &'static str,
    pub(super) cx: &'a Context<'a>,
    errors: &'a mut Vec<FieldError>,
}

impl At<'_> {
    /// Refuses the field, saying `detail` under its name.
    pub(super) fn refuse<T>(&mut self, detail: impl Into<String>) -> Option<T> {
        self.push(FieldError::new(self.field, detail))
    }

    /// Refuses the field with `error`, which may name a member (`rate_limit.requests`).
    pub(super) fn push<T>(&mut self, error: FieldError) -> Option<T> {
        self.errors.push(error);
        None
    }

    /// What a rule of the core answers, its error made a field's by `error`.
    pub(super) fn checked<T, E>(
        &mut self,
        result: Result<T, E>,
        error: impl FnOnce(&E) -> FieldError,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => self.push(error(&e)),
        }
    }
}

/// A type a present, non-`null` field is read as, adding a field-named error for each
/// problem (`None` then).
pub(super) trait Field: Sized {
    /// What to send, after "`field` is required: ", when a [`Required`] field is absent
    /// or `null`.
    const REQUIRED: &'static str = "";

    fn read(value: &Value, at: &mut At<'_>) -> Option<Self>;
}

/// What absent and `null` mean for a field of type [`Slot::Value`]: `None` when that
/// adds an error.
pub(super) trait Slot: Sized {
    type Value: Field;

    /// The field is left out.
    fn absent(at: &mut At<'_>) -> Option<Self>;

    /// The field is `null`: by default, as if left out.
    fn null(at: &mut At<'_>) -> Option<Self> {
        Self::absent(at)
    }

    /// The field holds a value.
    fn given(value: Self::Value) -> Self;
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
    type Value = T;

    fn absent(at: &mut At<'_>) -> Option<Self> {
        at.refuse(format!("{} is required: {}", at.field, T::REQUIRED))
    }

    fn given(value: T) -> Self {
        Self(value)
    }
}

impl<T: Field> Slot for Option<T> {
    type Value = T;

    fn absent(_: &mut At<'_>) -> Option<Self> {
        Some(None)
    }

    fn given(value: T) -> Self {
        Some(value)
    }
}

impl<T: Field> Slot for Change<T> {
    type Value = T;

    fn absent(_: &mut At<'_>) -> Option<Self> {
        Some(Self(None))
    }

    fn null(_: &mut At<'_>) -> Option<Self> {
        Some(Self(Some(None)))
    }

    fn given(value: T) -> Self {
        Self(Some(Some(value)))
    }
}

impl<T: Field> Slot for Kept<T> {
    type Value = T;

    fn absent(_: &mut At<'_>) -> Option<Self> {
        Some(Self(None))
    }

    fn null(at: &mut At<'_>) -> Option<Self> {
        let field = at.field;
        at.refuse(format!(
            "{field} cannot be removed; send a new {field}, or leave {field} out to keep it"
        ))
    }

    fn given(value: T) -> Self {
        Self(Some(value))
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
        let mut at = At {
            field: name,
            cx: &self.cx,
            errors: &mut self.errors,
        };
        match self.object.get(name) {
            None => T::absent(&mut at),
            Some(Value::Null) => T::null(&mut at),
            Some(value) => T::Value::read(value, &mut at).map(T::given),
        }
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
