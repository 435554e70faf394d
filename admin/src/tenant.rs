//! The tenant as the admin API reads it (DESIGN §14): `"tenant"` in a create body and
//! `?tenant=` on the lists, both checked as a [`TenantId`], each a field-named 422 when
//! invalid. Whom a request may see is not decided here but by the manager acting for the
//! request's actor (`KeyManager::acting_as`): a tenant's actor asking for another tenant
//! gets an empty page, whatever the query says.

use serde_json::Value;

use super::page::QueryParams;
use super::problem::FieldError;
use super::wire::{At, Field};
use tower_apikey::record::{MAX_TENANT_CHARS, TenantId};

/// A tenant id as a field's error says it.
fn invalid(field: &str, error: &impl ToString) -> FieldError {
    FieldError::new(field, error.to_string())
}

impl Field for TenantId {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        match value {
            Value::String(text) => {
                let field = at.field;
                at.checked(TenantId::new(text), |e| invalid(field, e))
            }
            _ => at.refuse(format!(
                "{} must be a string of 1 to {MAX_TENANT_CHARS} letters, digits and `.` `_` `:` `-`, \
                 or left out",
                at.field
            )),
        }
    }
}

/// `?tenant=`, if given: `Err` names the parameter when it is not a tenant id.
pub(super) fn tenant_param(params: &QueryParams) -> Result<Option<TenantId>, FieldError> {
    params
        .get("tenant")
        .map(|text| TenantId::new(text).map_err(|e| invalid("tenant", &e)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(uri: &str) -> Result<Option<TenantId>, FieldError> {
        tenant_param(&QueryParams::parse(&uri.parse().unwrap(), &["tenant"]).unwrap())
    }

    #[test]
    fn a_tenant_parameter_is_a_tenant_id_or_a_named_error() {
        assert_eq!(param("/keys").unwrap(), None);
        assert_eq!(
            param("/keys?tenant=acme.eu:1").unwrap().unwrap().as_str(),
            "acme.eu:1"
        );
        for bad in ["", "a%20b", "a/b", &"x".repeat(65)] {
            let error = param(&format!("/keys?tenant={bad}")).unwrap_err();
            assert_eq!(error.field, "tenant", "{bad}");
        }
    }
}
