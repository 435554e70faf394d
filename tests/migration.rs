//! Code written against 0.1's root names still compiles (CHANGELOG 0.2.0, "Migration"):
//! each old root name is a deprecated alias of the moved item, usable as a type, a
//! value (unit structs), an enum's variants, a constant and a generic type. Deprecation
//! is allowed here only; everywhere else `clippy -D warnings` refuses the old names.
#![allow(deprecated)]

use std::any::TypeId;

/// The alias names the very type it replaces.
fn same<A: 'static, B: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<B>()
}

#[test]
fn old_root_names_are_the_moved_items() {
    assert!(same::<
        tower_apikey::usage::TracingUsageSink,
        tower_apikey::usage::TracingUsageSink,
    >());
    assert!(same::<
        tower_apikey::limits::InMemoryLimitBackend,
        tower_apikey::limits::InMemoryLimitBackend,
    >());
    assert!(same::<
        tower_apikey::usage::UsageSinkError,
        tower_apikey::usage::UsageSinkError,
    >());
    assert!(same::<
        tower_apikey::record::KeyNameError,
        tower_apikey::record::KeyNameError,
    >());
    assert!(same::<
        tower_apikey::store::Page<tower_apikey::KeyRecord>,
        tower_apikey::store::Page<tower_apikey::KeyRecord>,
    >());
    assert!(same::<
        tower_apikey::testing::ManualClock,
        tower_apikey::testing::ManualClock,
    >());
    assert!(same::<
        tower_apikey::store::cached::CachedKeyStore<tower_apikey::InMemoryKeyStore>,
        tower_apikey::store::cached::CachedKeyStore<tower_apikey::InMemoryKeyStore>,
    >());
}

#[test]
fn old_root_names_work_as_values_variants_and_constants() {
    // A unit struct's old name is also a constant, so that it still builds one.
    let _sink: tower_apikey::usage::TracingUsageSink = tower_apikey::usage::TracingUsageSink;
    let _events: tower_apikey::event::TracingEventSink = tower_apikey::event::TracingEventSink;
    // Variants through the alias.
    assert_eq!(
        tower_apikey::record::KeyState::Active,
        tower_apikey::record::KeyState::Active
    );
    assert_eq!(
        tower_apikey::manager::MAX_LIFETIME,
        tower_apikey::manager::MAX_LIFETIME
    );
    assert_eq!(
        tower_apikey::store::MAX_PAGE_LIMIT,
        tower_apikey::store::MAX_PAGE_LIMIT
    );
    // Associated functions through the alias.
    let name = tower_apikey::record::KeyName::new("billing").expect("a valid name");
    assert_eq!(name.as_str(), "billing");
}
