//! Tenants in PostgreSQL (DESIGN §14, issue 31): the `tenant` column's check, tables of
//! the previous release upgraded by `migrate`, one tenant's events and usage read
//! through an index, and two instances on one database seeing the same tenant on
//! records, lists and events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::PgPool;
use tower_apikey::event::{EventQuery, EventStore, EventType, NewEvent};
use tower_apikey::manager::Tenancy;
use tower_apikey::record::TenantId;
use tower_apikey::store::{KeyQuery, PageLimit};
use tower_apikey::testing::conformance::{assert_same_record, sample_record};
use tower_apikey::usage::{UsageDay, UsageTracker};
use tower_apikey::{
    Actor, KeyId, KeyManager, KeyRecord, KeyStore, KeyStoreAdmin, ManagerError, NewKey, Scopes,
    StoreError,
};
use tower_apikey_postgres::PgKeyStore;

use super::{SCHEMA, exec, fresh_store, insert_as_an_earlier_release_did, pool, same_table};

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("a tenant id")
}

fn qualified(store: &PgKeyStore) -> String {
    format!("\"{}\".\"{}\"", store.schema(), store.table())
}

/// A key table of the release before tenants, as its `migrate` made it (19 columns, no
/// `tenant`), with a row it wrote: `migrate` adds the column with its check and the
/// tenant indexes, keeps the row (no tenant), and the table then stores tenants.
#[tokio::test]
async fn migrate_adds_the_tenant_to_a_key_table_of_the_previous_release() {
    let pool = pool().await;
    fresh_store(pool.clone()).await; // the test schema
    let table = super::unique_table();
    let q = format!("\"{SCHEMA}\".\"{table}\"");
    exec(
        &pool,
        format!(
            "CREATE TABLE {q} (
                id text NOT NULL PRIMARY KEY, name text NOT NULL, scopes text[] NOT NULL,
                digest bytea NOT NULL CHECK (octet_length(digest) = 32),
                created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
                revoked_at timestamptz, last_used_at timestamptz, rotated_from text,
                ends_at timestamptz, created_by text, revoked_by text,
                rate_limit_requests bigint, rate_limit_per_secs bigint,
                quota_requests bigint, quota_per text, allowed_ips text[],
                predecessor_grace_us bigint, recent_ips text[]);
             CREATE INDEX \"{table}_newest\" ON {q} (created_at DESC, id)"
        ),
    )
    .await;
    let old = sample_record("before tenants", &["a:b"], 0);
    insert_as_an_earlier_release_did(&pool, &q, &old, 13).await;

    let store = migrated_twice(&pool, &table).await;
    let found = store.lookup(old.id()).await.unwrap().unwrap();
    assert_same_record(&found, &old);
    assert_eq!(found.tenant(), None);
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2
         AND indexname IN ($2 || '_tcreate', $2 || '_tused', $2 || '_texpire') ORDER BY 1",
    )
    .bind(SCHEMA)
    .bind(&table)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(indexes.len(), 3, "{indexes:?}");

    let acme = sample_record("acme's", &[], 1).with_tenant(Some(tenant("acme")));
    store.insert(&acme).await.unwrap();
    assert_same_record(&store.get(acme.id()).await.unwrap().unwrap(), &acme);
    assert_lists(&store, "acme", &[&acme]).await;
    // The check came with the column.
    let refused = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {q} SET tenant = 'two words' WHERE id = $1"
    )))
    .bind(old.id().as_str())
    .execute(&pool)
    .await;
    assert!(is_check_violation(&refused), "{refused:?}");
}

/// The store of `table` in the test schema, migrated, and migrated again with nothing
/// left to add.
async fn migrated_twice(pool: &PgPool, table: &str) -> PgKeyStore {
    let store = PgKeyStore::new(pool.clone())
        .with_schema(SCHEMA)
        .and_then(|s| s.with_table(table))
        .expect("test names are valid");
    store.migrate().await.expect("migrate adds the tenant");
    store
        .migrate()
        .await
        .expect("and again, with nothing to add");
    store
}

/// Asserts that `store` lists `tenant`'s keys as `want`, in the default order.
async fn assert_lists(store: &PgKeyStore, tenant: &str, want: &[&KeyRecord]) {
    let query = KeyQuery::new(start()).with_tenant(TenantId::new(tenant).unwrap());
    let listed = store.list_page(&query).await.expect("list_page").items;
    assert_eq!(listed.len(), want.len(), "{tenant}'s keys");
    for (found, want) in listed.iter().zip(want) {
        assert_same_record(found, want);
    }
}

fn is_check_violation<T: std::fmt::Debug>(result: &Result<T, sqlx::Error>) -> bool {
    match result {
        Err(sqlx::Error::Database(e)) => e.code().as_deref() == Some("23514"),
        _ => false,
    }
}

/// A role writing to the table directly cannot store a tenant the crate would refuse;
/// and a row that holds one anyway (the check dropped) reads as corrupt, naming the
/// key, never as a panic or as a key of no tenant.
#[tokio::test]
async fn a_tenant_outside_the_alphabet_is_refused_by_the_table_and_corrupt_when_read() {
    let store = fresh_store(pool().await).await;
    let longest = "t".repeat(64);
    let record = sample_record("k", &[], 0).with_tenant(Some(tenant(&longest)));
    store.insert(&record).await.unwrap();
    let set = format!("UPDATE {} SET tenant = $2 WHERE id = $1", qualified(&store));
    let update = |value: String| {
        let (set, store, id) = (set.clone(), store.clone(), *record.id());
        async move {
            sqlx::query(sqlx::AssertSqlSafe(set))
                .bind(id.as_str())
                .bind(value)
                .execute(store.pool())
                .await
        }
    };
    for bad in [
        String::new(),
        "t".repeat(65),
        "acme\n".to_owned(),
        "acme/eu".to_owned(),
        "zoë".to_owned(),
        "a b".to_owned(),
    ] {
        let refused = update(bad.clone()).await;
        assert!(is_check_violation(&refused), "{bad:?}: {refused:?}");
    }
    assert_same_record(&store.lookup(record.id()).await.unwrap().unwrap(), &record);
    // Events and counts have the same check.
    let events = format!("\"{}\".\"{}_events\"", store.schema(), store.table());
    let refused = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {events} (type, key_id, at, tenant) VALUES ('created', 'x', now(), '')"
    )))
    .execute(store.pool())
    .await;
    assert!(is_check_violation(&refused), "{refused:?}");

    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint
         WHERE conrelid = $1::regclass AND contype = 'c' AND conname LIKE '%tenant%'",
    )
    .bind(qualified(&store))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    exec(
        store.pool(),
        format!(
            "ALTER TABLE {} DROP CONSTRAINT \"{}\"",
            qualified(&store),
            checks[0]
        ),
    )
    .await;
    update("a b".to_owned()).await.unwrap();
    match store.lookup(record.id()).await {
        Err(StoreError::Corrupt(why)) => {
            assert!(why.contains(record.id().as_str()), "{why}");
            assert!(why.contains("tenant"), "{why}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Two instances (two pools, one database): what one writes with a tenant, the other
/// reads with it, in records, tenant-filtered lists and events, whichever instance
/// wrote the event (a management change, or the request path knowing only the id).
#[tokio::test]
async fn two_instances_see_the_same_tenant_on_records_lists_and_events() {
    let a = fresh_store(pool().await).await;
    let b = same_table(&a, pool().await);
    let acme = sample_record("acme", &["reports:read"], 0).with_tenant(Some(tenant("acme")));
    let globex = sample_record("globex", &[], 1).with_tenant(Some(tenant("globex")));
    let own = sample_record("own", &[], 2);
    for record in [&acme, &globex, &own] {
        let created = NewEvent::new(EventType::Created, *record.id(), record.created_at());
        let stored = a.insert_with_events(record, &[created]).await.unwrap();
        assert_eq!(stored[0].tenant(), record.tenant());
    }
    for record in [&acme, &globex, &own] {
        assert_same_record(&b.lookup(record.id()).await.unwrap().unwrap(), record);
    }
    assert_lists(&b, "acme", &[&acme]).await;

    // The other instance's request path: only the id.
    let used = b
        .record_event(&NewEvent::new(
            EventType::FirstUsed,
            *acme.id(),
            acme.created_at(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.tenant(), Some(&tenant("acme")));
    // A rotation on the second instance: its successor and its event keep the tenant.
    let heir = sample_record("acme", &["reports:read"], 3)
        .with_rotated_from(Some(*acme.id()))
        .with_tenant(Some(tenant("acme")));
    let rotated = NewEvent::new(EventType::Rotated, *acme.id(), heir.created_at());
    let (_, events) = b
        .rotate_with_events(
            acme.id(),
            &heir,
            tower_apikey::store::OldKeyEnd::Keep,
            &[rotated],
        )
        .await
        .unwrap();
    assert_eq!(events[0].tenant(), Some(&tenant("acme")));
    for store in [&a, &b] {
        let events = store
            .events(&EventQuery::new().with_tenant(tenant("acme")))
            .await
            .unwrap()
            .items;
        let seen: Vec<_> = events.iter().map(|e| (e.kind(), *e.key_id())).collect();
        assert_eq!(
            seen,
            [
                (EventType::Rotated, *acme.id()),
                (EventType::FirstUsed, *acme.id()),
                (EventType::Created, *acme.id()),
            ]
        );
        assert_lists(store, "acme", &[&heir, &acme]).await;
        let none = store
            .events(&EventQuery::new().with_tenant(tenant("initech")))
            .await
            .unwrap();
        assert!(none.items.is_empty());
    }
}

/// Two instances (two managers, two pools, one database): a tenant's administrator is
/// scoped the same on each. What acme's admin makes on one instance, the other shows it
/// and it alone; globex's key answers as an unknown id on both, and stays as it was.
#[tokio::test]
async fn a_tenants_admin_is_scoped_the_same_on_two_instances() {
    let a = fresh_store(pool().await).await;
    let b = same_table(&a, pool().await);
    let (on_a, on_b) = (KeyManager::new(a.clone()), KeyManager::new(b.clone()));
    let globex = on_b
        .create(NewKey::new("globex sync", ["reports:read"]).tenant(tenant("globex")))
        .await
        .unwrap()
        .record;
    let admin = Actor::person(
        "ann@acme.example",
        Scopes::new(["reports:*", "admin:keys"]).unwrap(),
        Tenancy::Tenant(tenant("acme")),
    )
    .unwrap();
    let made = on_a
        .acting_as(&admin)
        .create(NewKey::new("acme sync", ["reports:read"]))
        .await
        .unwrap()
        .record;
    assert_eq!(made.tenant(), Some(&tenant("acme")));
    for manager in [&on_a, &on_b] {
        let acting = manager.acting_as(&admin);
        let listed = acting.list_page(manager.key_query()).await.unwrap().items;
        assert_eq!(listed.len(), 1);
        assert_same_record(&listed[0], &made);
        let asked = manager.key_query().with_tenant(tenant("globex"));
        assert!(acting.list_page(asked).await.unwrap().items.is_empty());
        assert!(matches!(
            acting.get(globex.id()).await,
            Err(ManagerError::NotFound(id)) if id == *globex.id()
        ));
        assert!(matches!(
            acting.revoke(globex.id()).await,
            Err(ManagerError::NotFound(_))
        ));
        assert!(matches!(
            acting.rotate(globex.id(), None).await,
            Err(ManagerError::NotFound(_))
        ));
    }
    // A rotation on the first instance: the second lists the heir in acme, for acme.
    let heir = on_a
        .acting_as(&admin)
        .rotate(made.id(), None)
        .await
        .unwrap()
        .record;
    assert_eq!(heir.tenant(), Some(&tenant("acme")));
    let on_b_listed = on_b
        .acting_as(&admin)
        .list_page(on_b.key_query())
        .await
        .unwrap()
        .items;
    let mut ids: Vec<_> = on_b_listed.iter().map(|r| *r.id()).collect();
    ids.sort();
    let mut want = vec![*made.id(), *heir.id()];
    want.sort();
    assert_eq!(ids, want);
    let unchanged = on_a.get(globex.id()).await.unwrap();
    assert_same_record(&unchanged, &globex);
}

const DAY: Duration = Duration::from_secs(86_400);

/// The sample records' creation time (2027-01-15T08:00:00Z).
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// `"schema"."<table><suffix>"`.
fn aux(store: &PgKeyStore, suffix: &str) -> String {
    format!("\"{}\".\"{}{suffix}\"", store.schema(), store.table())
}

/// 2,100 keys over a hundred tenants (`org-0` to `org-99`; one key in ten, those of
/// `org-0`, `org-10`, …, the application's own), 60,000 events and 90 days of counts
/// for each key, written as the store writes them, then `ANALYZE`d: a platform of many
/// small tenants, where reading all events newest first to find one tenant's would
/// read most of the table.
async fn load_tenants(store: &PgKeyStore) {
    let keys = aux(store, "");
    let events = aux(store, "_events");
    let usage = aux(store, "_usage");
    exec(
        store.pool(),
        format!(
            "INSERT INTO {keys} (id, name, scopes, digest, created_at, expires_at, tenant)
             SELECT lpad(g::text, 16, '0'), 'service ' || g, ARRAY['reports:read'],
                    decode(md5(g::text) || md5(g::text), 'hex'),
                    to_timestamp(1800000000), to_timestamp(1900000000),
                    CASE WHEN g % 10 <> 0 THEN 'org-' || (g % 100) END
             FROM generate_series(1, 2100) AS g;
             INSERT INTO {events} (type, key_id, at, tenant)
             SELECT 'created', k.id, to_timestamp(1800000000 + e), k.tenant
             FROM generate_series(1, 60000) AS e
             JOIN {keys} AS k ON k.id = lpad((e % 2100 + 1)::text, 16, '0');
             INSERT INTO {usage} (key_id, day, requests, tenant)
             SELECT k.id, DATE '2027-01-01' + d, 10, k.tenant
             FROM {keys} AS k, generate_series(0, 89) AS d;
             ANALYZE {keys}; ANALYZE {events}; ANALYZE {usage};"
        ),
    )
    .await;
}

fn plan_uses(plan: &[String], index: &str) -> String {
    let plan = plan.join("\n");
    assert!(plan.contains(index), "not through {index}:\n{plan}");
    assert!(!plan.contains("Seq Scan"), "a Seq Scan:\n{plan}");
    plan
}

/// One tenant's events, first page and next, with and without a key, and one tenant's
/// daily counts, read through the tenant indexes `migrate` creates (DESIGN §14), and
/// answer only that tenant's rows.
#[tokio::test]
async fn a_tenants_events_and_usage_read_through_an_index() {
    let store = fresh_store(pool().await).await;
    load_tenants(&store).await;
    let org = TenantId::new("org-3").unwrap();
    let ev_tnt = format!("{}_ev_tnt", store.table());
    let query = EventQuery::new()
        .with_tenant(org.clone())
        .with_limit(PageLimit::new(100).unwrap());
    plan_uses(&store.explain_events(&query).await.unwrap(), &ev_tnt);
    let page = store.events(&query).await.unwrap();
    assert_eq!(page.items.len(), 100, "21 keys, about 600 events");
    assert!(page.items.iter().all(|e| e.tenant() == Some(&org)));
    let next = query
        .clone()
        .after(page.next.as_ref().expect("more"))
        .unwrap();
    plan_uses(&store.explain_events(&next).await.unwrap(), &ev_tnt);
    // A key's events under a tenant filter: through the key's index.
    let key = page.items[0].key_id();
    let of_key = query.clone().key(*key);
    plan_uses(
        &store.explain_events(&of_key).await.unwrap(),
        &format!("{}_ev_key", store.table()),
    );
    // The application's own events are never a tenant's.
    let own = KeyId::new("0000000000000010").unwrap();
    assert!(
        store
            .events(&query.key(own))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let from = UsageDay::of(UNIX_EPOCH + Duration::from_secs(1_798_761_600)); // 2027-01-01
    let to = UsageDay::from_days_since_epoch(from.days_since_epoch() + 29);
    plan_uses(
        &store
            .explain_tenant_daily_requests(&org, from, to)
            .await
            .unwrap(),
        &format!("{}_us_tnt", store.table()),
    );
    let days = store.tenant_daily_requests(&org, from, to).await.unwrap();
    // org-3's keys: g % 100 = 3 among 1..=2100, 10 requests a day each.
    let keys = (1..=2100u64).filter(|g| g % 100 == 3).count() as u64;
    assert_eq!(days.len(), 30);
    assert_eq!(days[0], (from, 10 * keys));
    assert_eq!(days[29], (to, 10 * keys));
    let none = TenantId::new("org-none").unwrap();
    assert!(
        store
            .tenant_daily_requests(&none, from, to)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Counts flushed by the usage tracker carry their key's tenant: a tenant's sum is its
/// keys' counts, never another tenant's nor the application's own.
#[tokio::test]
async fn a_tenants_daily_requests_sum_its_keys_counts_only() {
    let store = fresh_store(pool().await).await;
    let acme = TenantId::new("acme").unwrap();
    let records = [
        sample_record("a1", &[], 0).with_tenant(Some(acme.clone())),
        sample_record("a2", &[], 1).with_tenant(Some(acme.clone())),
        sample_record("g", &[], 2).with_tenant(Some(TenantId::new("globex").unwrap())),
        sample_record("own", &[], 3),
    ];
    for record in &records {
        store.insert(record).await.unwrap();
    }
    let tracker = UsageTracker::builder(store.clone()).build();
    for (record, n) in records.iter().zip([3, 4, 50, 70]) {
        for _ in 0..n {
            tracker.record(record.id(), start());
        }
        tracker.record(record.id(), start() + DAY);
    }
    tracker.shutdown().await.unwrap();
    let day = UsageDay::of(start());
    assert_eq!(
        store
            .tenant_daily_requests(&acme, day.previous(), day.next())
            .await
            .unwrap(),
        [(day, 7), (day.next(), 2)]
    );
}

/// Events and counts stored before tenants (their tables without the column, as the
/// previous release made them) gain the column on `migrate`, filled from their keys'
/// rows in the same transaction; the tenant indexes are made; and new events carry it.
#[tokio::test]
async fn migrate_adds_the_tenant_to_events_and_counts_from_before_tenants() {
    let store = fresh_store(pool().await).await;
    let acme = TenantId::new("acme").unwrap();
    let key = sample_record("a", &[], 0).with_tenant(Some(acme.clone()));
    let own = sample_record("own", &[], 1);
    for record in [&key, &own] {
        store.insert(record).await.unwrap();
    }
    // The previous release's tables: no tenant on events or counts.
    for suffix in ["_events", "_usage"] {
        exec(
            store.pool(),
            format!("ALTER TABLE {} DROP COLUMN tenant", aux(&store, suffix)),
        )
        .await;
    }
    for record in [&key, &own] {
        exec(
            store.pool(),
            format!(
                "INSERT INTO {} (type, key_id, at) VALUES ('created', '{}', now());
                 INSERT INTO {} (key_id, day, requests) VALUES ('{}', DATE '2027-01-15', 9)",
                aux(&store, "_events"),
                record.id(),
                aux(&store, "_usage"),
                record.id()
            ),
        )
        .await;
    }
    store.migrate().await.expect("migrate adds the columns");
    store
        .migrate()
        .await
        .expect("and again, with nothing to add");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE $2
         ORDER BY 1",
    )
    .bind(store.schema())
    .bind(format!("{}_%_tnt", store.table()))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let t = store.table();
    assert_eq!(indexes, [format!("{t}_ev_tnt"), format!("{t}_us_tnt")]);
    let events = store.events(&EventQuery::new()).await.unwrap().items;
    let tenant_of = |id| events.iter().find(|e| e.key_id() == id).unwrap().tenant();
    assert_eq!(tenant_of(key.id()), Some(&acme), "filled from the key");
    assert_eq!(tenant_of(own.id()), None, "the application's own");
    let day = UsageDay::of(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    assert_eq!(
        store.tenant_daily_requests(&acme, day, day).await.unwrap(),
        [(day, 9)]
    );
    // New events and counts carry it as they are written.
    let stored = store
        .record_event(&NewEvent::new(EventType::Revoked, *key.id(), start()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.tenant(), Some(&acme));
    let tracker = UsageTracker::builder(store.clone()).build();
    tracker.record(key.id(), start() + DAY);
    tracker.shutdown().await.unwrap();
    let next = UsageDay::of(start() + DAY);
    assert_eq!(
        store
            .tenant_daily_requests(&acme, next, next)
            .await
            .unwrap(),
        [(next, 1)]
    );
}
