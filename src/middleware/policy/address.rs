//! The address allowlist: a key with [`allowed_ips`](crate::KeyRecord::allowed_ips) is
//! accepted only from those addresses; otherwise 403 `address_not_allowed`.
//!
//! The client address is the one [`TrustedProxies`](crate::client_addr::TrustedProxies) finds (the
//! peer, or the hop before trusted proxies). When the server recorded no peer address
//! the layer cannot tell where the request came from, so a restricted key is refused
//! (fail closed), never let through.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::middleware::policy::Check;
use crate::middleware::rejection::RejectionKind;

pub(super) fn check(check: &mut Check<'_>) -> Result<(), RejectionKind> {
    let Some(allowed) = check.record.allowed_ips() else {
        return Ok(());
    };
    let client = check
        .config
        .proxies
        .client_addr(check.headers, check.extensions);
    match client {
        Some(client) if allowed.allows(client.ip()) => Ok(()),
        Some(_) => Err(RejectionKind::AddressNotAllowed),
        None => {
            // Once per process: the cause is the server's setup, and a line per request
            // would flood the log.
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                key_id = %check.record.id(),
                "refusing a key restricted to addresses: the server recorded no client address (insert the peer's SocketAddr into the request's extensions)"
                );
            }
            Err(RejectionKind::AddressNotAllowed)
        }
    }
}
