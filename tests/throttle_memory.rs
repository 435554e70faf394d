//! The failure throttle's memory does not grow with the number of addresses: a flood of
//! wrong keys from 200,000 distinct addresses, through the layer, leaves the heap as it
//! was. The heap is measured by a global allocator that keeps each thread's live bytes,
//! so other tests' threads do not blur the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower::{ServiceBuilder, ServiceExt};
use tower_apikey::key::KeyPrefix;
use tower_apikey::middleware::FailureThrottle;
use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore, PlaintextKey};

thread_local! {
    /// Bytes this thread allocated and has not freed.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Forwards to the system allocator, counting live bytes per thread.
struct PerThread;

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: PerThread = PerThread;

async fn echo(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

/// The `i`-th distinct address: IPv4 for even `i`, an IPv6 /64 of its own for odd `i`.
fn address(i: u32) -> SocketAddr {
    let ip = if i.is_multiple_of(2) {
        Ipv4Addr::from(0x0A00_0000 + i).into()
    } else {
        Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 1).into()
    };
    SocketAddr::new(ip, 40_000)
}

#[tokio::test]
async fn a_flood_from_many_addresses_leaves_memory_as_it_was() {
    let service = ServiceBuilder::new()
        .layer(
            ApiKeyV2Layer::new(InMemoryKeyStore::new())
                .throttle_failures(FailureThrottle::per_minute(1)),
        )
        .service_fn(echo);
    let wrong = format!(
        "ApiKey-v2 {}",
        PlaintextKey::generate(&KeyPrefix::default()).expose_secret()
    );
    let call = |i: u32| {
        let mut request = Request::get("/")
            .header(AUTHORIZATION, wrong.as_str())
            .body(String::new())
            .unwrap();
        request.extensions_mut().insert(address(i));
        service.clone().oneshot(request)
    };

    // First uses (lazy statics, the runtime's buffers) are not the steady state.
    for i in 0..1_000 {
        call(i).await.unwrap();
    }
    let before = live();
    let addresses = 200_000;
    let mut refused = 0;
    for i in 1_000..1_000 + addresses {
        let status = call(i).await.unwrap().status();
        assert!(status == 401 || status == 429, "{status}");
        refused += usize::from(status == 429);
    }
    let grown = live() - before;
    // A map entry per address would be megabytes; the table was allocated up front.
    assert!(grown < 16 * 1024, "the heap grew by {grown} bytes");

    // The flood was counted: each address is now throttled for its one failure, and a
    // collision only ever throttled early (some of the flood never reached a lookup).
    for i in [1_000, 1_001, 100_000, 100_001, 200_998, 200_999] {
        assert_eq!(call(i).await.unwrap().status(), 429, "{}", address(i));
    }
    assert!(
        refused < addresses as usize,
        "every request refused: {refused}"
    );
}
