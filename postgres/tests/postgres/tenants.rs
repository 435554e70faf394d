//! Tenants in PostgreSQL (DESIGN §14, issue 31): the `tenant` column's check, a key
//! table of the previous release upgraded by `migrate`, and two instances on one
//! database seeing the same tenant on records, lists and events.

use tower_apikey::event::{EventQuery, EventStore, EventType, NewEvent};
use tower_apikey::record::TenantId;
use tower_apikey::store::KeyQuery;
use tower_apikey::testing::conformance::{assert_same_record, sample_record};
use tower_apikey::{KeyStore, KeyStoreAdmin, StoreError};
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

    let store = PgKeyStore::new(pool.clone())
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(&table)
        .unwrap();
    store.migrate().await.expect("migrate adds the tenant");
    store
        .migrate()
        .await
        .expect("and again, with nothing to add");
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
    let page = store
        .list_page(&KeyQuery::new(old.created_at()).with_tenant(tenant("acme")))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_same_record(&page.items[0], &acme);
    // The check came with the column.
    let refused = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {q} SET tenant = 'two words' WHERE id = $1"
    )))
    .bind(old.id().as_str())
    .execute(&pool)
    .await;
    assert!(is_check_violation(&refused), "{refused:?}");
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
    let listed = b
        .list_page(&KeyQuery::new(own.created_at()).with_tenant(tenant("acme")))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_same_record(&listed.items[0], &acme);

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
        let keys = store
            .list_page(&KeyQuery::new(own.created_at()).with_tenant(tenant("acme")))
            .await
            .unwrap()
            .items;
        let ids: Vec<_> = keys.iter().map(|r| *r.id()).collect();
        assert_eq!(ids, [*heir.id(), *acme.id()]);
        let none = store
            .events(&EventQuery::new().with_tenant(tenant("initech")))
            .await
            .unwrap();
        assert!(none.items.is_empty());
    }
}
