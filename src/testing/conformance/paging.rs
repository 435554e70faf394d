//! The conformance checks of [`KeyStoreAdmin::list_page`]: paging, every filter, every
//! sort, and stable pages while keys are created between them.

use std::collections::HashSet;
use std::time::Duration;

use super::{sample_record, t};
use crate::key::KeyId;
use crate::page::PageLimit;
use crate::record::{KeyName, KeyRecord, TenantId};
use crate::scope::Scope;
use crate::store::KeyStoreAdmin;
use crate::store::key_query::{KeyFilter, KeyQuery, KeySort};

const DAY: u64 = 86_400;

/// Every sort the admin API offers.
const SORTS: [&str; 6] = [
    "-created",
    "created",
    "-last_used",
    "last_used",
    "-expires",
    "expires",
];

/// Follows `query`'s pages to the end, `limit` at a time, and returns the ids in the
/// order the pages gave them.
async fn every_page<S: KeyStoreAdmin>(store: &S, query: &KeyQuery, limit: usize) -> Vec<KeyId> {
    let base = query
        .clone()
        .with_limit(PageLimit::new(limit).expect("a valid limit"));
    let mut seen = Vec::new();
    let mut next_query = base.clone();
    // Bounded, so that a store whose cursor never advances fails instead of hanging.
    for _ in 0..1_000 {
        let page = store.list_page(&next_query).await.expect("list_page");
        assert!(
            page.items.len() <= limit,
            "a page holds at most the limit ({limit}), got {}",
            page.items.len()
        );
        seen.extend(page.items.iter().map(|r| *r.id()));
        match page.next {
            Some(next) => {
                next_query = base
                    .clone()
                    .after(&next)
                    .expect("a store's cursor must be one KeyQuery reads back")
            }
            None => return seen,
        }
    }
    panic!("list_page kept giving a next page: its cursor does not advance")
}

/// The names of the keys `query`'s pages list, one key a page, in their order.
async fn names_listed<S: KeyStoreAdmin>(
    store: &S,
    query: &KeyQuery,
    records: &[KeyRecord],
) -> Vec<String> {
    every_page(store, query, 1)
        .await
        .iter()
        .map(|id| {
            let record = records.iter().find(|r| r.id() == id).expect("inserted");
            record.name().to_string()
        })
        .collect()
}

/// The ids of `records` that `query` keeps, in its order: what every store must answer.
fn expected(records: &[KeyRecord], query: &KeyQuery) -> Vec<KeyId> {
    let mut kept: Vec<&KeyRecord> = records.iter().filter(|r| query.matches(r)).collect();
    kept.sort_by(|a, b| query.compare(a, b));
    kept.iter().map(|r| *r.id()).collect()
}

/// Records whose creation, last-use and expiry times repeat, so that ties are broken by
/// id, and some never used.
fn varied_records() -> Vec<KeyRecord> {
    (0..23u64)
        .map(|i| {
            let record = sample_record(&format!("key {i}"), &["reports:read"], (i / 3) * 10)
                .with_expires_at(t(DAY + (i % 4) * 100));
            let used = (i % 3 != 0).then(|| t(1_000 + (i % 5) * 10));
            record.with_last_used_at(used)
        })
        .collect()
}

async fn insert_all<S: KeyStoreAdmin>(store: &S, records: &[KeyRecord]) {
    for record in records {
        store.insert(record).await.expect("insert");
    }
}

/// Paging through every sort visits every key once, in the order [`KeyQuery`] defines
/// (ties by id, never-used keys last when descending by last use), whatever the limit.
pub async fn list_page_visits_every_key_once_in_each_sort<S: KeyStoreAdmin>(store: S) {
    let records = varied_records();
    insert_all(&store, &records).await;
    for sort in SORTS {
        let query = KeyQuery::new(t(0)).with_sort(KeySort::parse(sort).expect("a sort"));
        let want = expected(&records, &query);
        for limit in [1, 4, 23, 100] {
            assert_eq!(
                every_page(&store, &query, limit).await,
                want,
                "sort {sort}, limit {limit}: pages must give every key once, in order"
            );
        }
    }
    let first = store
        .list_page(&KeyQuery::new(t(0)).with_limit(PageLimit::new(23).unwrap()))
        .await
        .expect("list_page");
    assert!(
        first.next.is_none(),
        "a page that holds the last key has no next cursor"
    );
}

/// Each state filter keeps exactly the keys in that state at the query's time (not the
/// store's clock), in every sort.
pub async fn list_page_filters_by_state<S: KeyStoreAdmin>(store: S) {
    let now = t(100 * DAY);
    let at = |days_ago: u64| now - Duration::from_secs(days_ago * DAY);
    let make = |name: &str, created_days_ago: u64| {
        let created = at(created_days_ago);
        KeyRecord::new(
            *sample_record(name, &[], 0).id(),
            KeyName::new(name).expect("a valid name"),
            crate::scope::Scopes::empty(),
            *sample_record(name, &[], 0).digest(),
            created,
            created + Duration::from_secs(365 * DAY),
        )
    };
    let records = [
        make("fresh", 1),
        make("never used, 8 days old", 8),
        make("used 31 days ago", 90).with_last_used_at(Some(at(31))),
        make("used 29 days ago", 90).with_last_used_at(Some(at(29))),
        make("ends in 10 days", 10).with_ends_at(Some(now + Duration::from_secs(10 * DAY))),
        make("expires in 20 days", 345),
        make("ended", 10).with_ends_at(Some(at(1))),
        make("expired", 400).with_expires_at(at(35)),
        make("revoked", 1).with_revoked_at(Some(now)),
        make("revoked later than now", 1).with_revoked_at(Some(now + Duration::from_secs(DAY))),
    ];
    insert_all(&store, &records).await;
    let names = |ids: Vec<KeyId>| -> Vec<String> {
        let mut names: Vec<String> = ids
            .iter()
            .map(|id| {
                records
                    .iter()
                    .find(|r| r.id() == id)
                    .expect("a listed key was inserted")
                    .name()
                    .to_string()
            })
            .collect();
        names.sort();
        names
    };
    let cases: [(KeyFilter, &[&str]); 5] = [
        (
            KeyFilter::Active,
            &[
                "ends in 10 days",
                "expires in 20 days",
                "fresh",
                "never used, 8 days old",
                "used 29 days ago",
                "used 31 days ago",
            ],
        ),
        (
            KeyFilter::Expiring,
            &["ends in 10 days", "expires in 20 days"],
        ),
        (KeyFilter::Expired, &["ended", "expired"]),
        (KeyFilter::Revoked, &["revoked", "revoked later than now"]),
        (
            KeyFilter::Dormant,
            &[
                "ends in 10 days",
                "expires in 20 days",
                "never used, 8 days old",
                "used 31 days ago",
            ],
        ),
    ];
    for (state, want) in cases {
        for sort in SORTS {
            let query = KeyQuery::new(now)
                .with_state(state)
                .with_sort(KeySort::parse(sort).expect("a sort"));
            let got = every_page(&store, &query, 2).await;
            assert_eq!(
                got,
                expected(&records, &query),
                "state {state}, sort {sort}: the keys in that state, in order"
            );
            assert_eq!(names(got), want, "state {state}, sort {sort}");
        }
    }
    // The same keys judged a year later: the answer follows the query's time.
    let later = KeyQuery::new(now + Duration::from_secs(400 * DAY)).with_state(KeyFilter::Active);
    assert!(
        every_page(&store, &later, 10).await.is_empty(),
        "states must be judged at the query's time"
    );
}

/// `q` finds keys whose name or id contains it, ignoring case; `%`, `_` and `\` are
/// plain characters, not patterns.
pub async fn list_page_searches_names_and_ids<S: KeyStoreAdmin>(store: S) {
    let records = [
        sample_record("Billing Sync (prod)", &[], 0),
        sample_record("billing-export", &[], 10),
        sample_record("100% coverage", &[], 20),
        sample_record("snake_case", &[], 30),
        sample_record("back\\slash", &[], 40),
        sample_record("Überweisung", &[], 50),
    ];
    insert_all(&store, &records).await;
    let search = |text: &str| KeyQuery::new(t(0)).with_search(text).expect("a search");
    let names = |ids: Vec<KeyId>| -> Vec<String> {
        ids.iter()
            .map(|id| {
                let record = records.iter().find(|r| r.id() == id).expect("inserted");
                record.name().to_string()
            })
            .collect()
    };
    for (text, want) in [
        ("BILLING", &["billing-export", "Billing Sync (prod)"][..]),
        ("sync (P", &["Billing Sync (prod)"]),
        ("%", &["100% coverage"]),
        ("0%", &["100% coverage"]),
        ("_", &["snake_case"]),
        ("e_c", &["snake_case"]),
        ("\\", &["back\\slash"]),
        ("k\\s", &["back\\slash"]),
        ("nothing like it", &[]),
    ] {
        assert_eq!(
            names(every_page(&store, &search(text), 2).await),
            want,
            "q={text:?}"
        );
    }
    let id = records[3].id().as_str();
    let middle = &id[4..12];
    for text in [
        middle.to_owned(),
        middle.to_lowercase(),
        middle.to_uppercase(),
    ] {
        let found = every_page(&store, &search(&text), 10).await;
        assert!(
            found.contains(records[3].id()),
            "q={text:?} must find the key whose id contains it, ignoring case"
        );
        assert_eq!(found, expected(&records, &search(&text)), "q={text:?}");
    }
}

/// `scope` keeps the keys whose scopes grant it, wildcards included.
pub async fn list_page_filters_by_scope<S: KeyStoreAdmin>(store: S) {
    let records = [
        sample_record("exact", &["reports:read"], 0),
        sample_record("wildcard", &["reports:*", "admin:keys"], 10),
        sample_record("deeper", &["reports:read:eu"], 20),
        sample_record("sideways", &["reports:write"], 30),
        sample_record("none", &[], 40),
    ];
    insert_all(&store, &records).await;
    for (scope, want) in [
        ("reports:read", &["wildcard", "exact"][..]),
        ("reports:read:eu", &["deeper", "wildcard"]),
        ("reports:*", &["wildcard"]),
        ("admin:keys", &["wildcard"]),
        ("billing:read", &[]),
    ] {
        let query = KeyQuery::new(t(0)).with_scope(Scope::new(scope).expect("a scope"));
        let got = names_listed(&store, &query, &records).await;
        assert_eq!(got, want, "scope={scope}");
    }
}

/// A tenant filter answers that tenant's keys only: never another tenant's, never the
/// application's own (no tenant), and nothing for a tenant with no keys (DESIGN §14).
pub async fn list_page_filters_by_tenant<S: KeyStoreAdmin>(store: S) {
    let tenant = |id: &str| TenantId::new(id).expect("a tenant id");
    let records = [
        sample_record("acme-1", &["reports:read"], 0).with_tenant(Some(tenant("acme"))),
        sample_record("globex", &["reports:read"], 10).with_tenant(Some(tenant("globex"))),
        sample_record("own", &["reports:read"], 20),
        sample_record("acme-2", &[], 30).with_tenant(Some(tenant("acme"))),
        // Ids compare as written: another tenant, not acme's.
        sample_record("Acme", &[], 40).with_tenant(Some(tenant("Acme"))),
    ];
    insert_all(&store, &records).await;
    for (filter, want) in [
        ("acme", &["acme-2", "acme-1"][..]),
        ("globex", &["globex"]),
        ("Acme", &["Acme"]),
        ("initech", &[]),
    ] {
        let base = KeyQuery::new(t(0)).with_tenant(tenant(filter));
        for query in [
            base.clone(),
            base.clone().with_state(KeyFilter::Active),
            base.clone().with_search("a").expect("a search"),
        ] {
            let got = names_listed(&store, &query, &records).await;
            let want: Vec<&str> = want
                .iter()
                .copied()
                .filter(|name| {
                    let record = records.iter().find(|r| r.name().as_str() == *name);
                    query.matches(record.expect("listed"))
                })
                .collect();
            assert_eq!(got, want, "tenant={filter}, query={query:?}");
        }
    }
}

/// Keys created between two pages neither repeat a key nor hide one: each key that
/// existed when paging began is seen exactly once, in every sort.
pub async fn list_page_is_stable_while_keys_are_created<S: KeyStoreAdmin>(store: S) {
    let records = varied_records();
    insert_all(&store, &records).await;
    let before: HashSet<KeyId> = records.iter().map(|r| *r.id()).collect();
    let mut created = 0u64;
    for sort in SORTS {
        let base = KeyQuery::new(t(0))
            .with_sort(KeySort::parse(sort).expect("a sort"))
            .with_limit(PageLimit::new(5).unwrap());
        let mut query = base.clone();
        let mut seen: Vec<KeyId> = Vec::new();
        for _ in 0..1_000 {
            let page = store.list_page(&query).await.expect("list_page");
            seen.extend(page.items.iter().map(|r| *r.id()));
            // Between pages, a key in turn newer than all, as old as the oldest, or
            // sharing its times with keys already listed.
            let (name, at) =
                [("newest", 10_000 + created), ("oldest", 0), ("tie", 30)][(created % 3) as usize];
            let record = sample_record(&format!("{name} {created}"), &[], at)
                .with_last_used_at(Some(t(1_000 + (at % 5) * 10)));
            store.insert(&record).await.expect("insert");
            created += 1;
            match page.next {
                Some(next) => query = base.clone().after(&next).expect("a cursor"),
                None => break,
            }
        }
        let unique: HashSet<KeyId> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "sort {sort}: no key may appear on two pages"
        );
        assert!(
            before.is_subset(&unique),
            "sort {sort}: every key that existed before paging must be on some page"
        );
    }
}
