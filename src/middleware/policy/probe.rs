//! A test-only policy, to show that a new policy is one file and one row: it refuses a
//! request carrying `x-probe-refuse`, with a kind whose own policy's row says the
//! opposite of this one's on both counts (an address refusal, which charges nothing and
//! records no address; this row charges and records it), so that a test can tell the
//! verdict reads the row, not the kind.

use crate::middleware::policy::Check;
use crate::middleware::rejection::RejectionKind;

pub(super) fn check(check: &mut Check<'_>) -> Result<(), RejectionKind> {
    if check.headers.contains_key("x-probe-refuse") {
        Err(RejectionKind::AddressNotAllowed)
    } else {
        Ok(())
    }
}
