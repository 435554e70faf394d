//! `PgKeyStore::list_page` against a real PostgreSQL: on a table of 20,000 keys after
//! `ANALYZE`, every query but `q` reads through an index (no `Seq Scan` on the keys
//! table), one tenant's in every sort through that sort's tenant index, and `migrate()`
//! adds the listing indexes to a table made before them.
//!
//! Needs `APIKEY_TEST_DATABASE_URL`, like `tests/postgres.rs`; each test works in its
//! own table in the schema `apikey_tests`, dropped at its end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tower_apikey::record::TenantId;
use tower_apikey::store::{KeyFilter, KeyQuery, KeySort, PageCursor};
use tower_apikey::{KeyStoreAdmin, Scope};
use tower_apikey_postgres::PgKeyStore;

const SCHEMA: &str = "apikey_tests";
const ROWS: i64 = 20_000;
/// The application's clock in these tests: 2027-01-15T08:00:00Z.
const NOW_SECS: i64 = 1_800_000_000;

async fn pool() -> PgPool {
    let url = std::env::var("APIKEY_TEST_DATABASE_URL").expect(
        "APIKEY_TEST_DATABASE_URL must name a PostgreSQL database for these tests: \
         run scripts/test, which provides one, or set it yourself",
    );
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to APIKEY_TEST_DATABASE_URL: {e}"))
}

/// A migrated store in a table of its own (named as `tests/postgres.rs` names them, so
/// that its clean-up of stale tables covers these too).
async fn fresh_store() -> PgKeyStore {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let table = format!(
        "t{secs}_{}_l{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let store = PgKeyStore::new(pool().await)
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(&table)
        .unwrap();
    store.migrate().await.expect("migrate");
    store
}

fn qualified(store: &PgKeyStore) -> String {
    format!("\"{}\".\"{}\"", store.schema(), store.table())
}

async fn exec(pool: &PgPool, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn drop_table(store: &PgKeyStore) {
    exec(store.pool(), format!("DROP TABLE {}", qualified(store))).await;
}

/// `ROWS` keys, as an organisation has them: most active and used, some never used,
/// a few revoked, expired, ended by rotation or expiring soon; scopes from a handful;
/// spread over seven tenants (`org-0` to `org-6`), one key in eleven the application's
/// own (no tenant).
async fn load(store: &PgKeyStore) {
    let t = qualified(store);
    exec(
        store.pool(),
        format!(
            "INSERT INTO {t} (id, name, scopes, digest, created_at, expires_at, revoked_at,
                              last_used_at, ends_at, tenant)
             SELECT lpad(g::text, 16, '0'),
                    'service ' || g,
                    CASE g % 4 WHEN 0 THEN ARRAY['reports:read']
                               WHEN 1 THEN ARRAY['reports:read', 'reports:write']
                               WHEN 2 THEN ARRAY['billing:*']
                               ELSE ARRAY['admin:keys'] END,
                    decode(md5(g::text) || md5(g::text), 'hex'),
                    created,
                    CASE WHEN g % 50 = 0 THEN now_ - interval '1 day'
                         ELSE created + interval '365 days' END,
                    CASE WHEN g % 40 = 0 THEN now_ - interval '2 days' END,
                    CASE WHEN g % 5 <> 0 THEN now_ - (g % 60) * interval '1 day' END,
                    CASE WHEN g % 97 = 0 THEN now_ - interval '1 hour' END,
                    CASE WHEN g % 11 <> 0 THEN 'org-' || (g % 7) END
             FROM generate_series(1, {ROWS}) AS g,
                  LATERAL (SELECT to_timestamp({NOW_SECS}) AS now_) AS n,
                  LATERAL (SELECT n.now_ - (g % 340) * interval '1 day'
                                  - g * interval '1 second' AS created) AS c"
        ),
    )
    .await;
    exec(store.pool(), format!("ANALYZE {t}")).await;
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS as u64)
}

/// Asserts that `query`'s plan reads no part of the keys table sequentially, and that
/// the store answers it.
async fn assert_indexed(store: &PgKeyStore, what: &str, query: &KeyQuery) {
    let plan = store.explain_list_page(query).await.expect("explain");
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index"),
        "{what}: no index in the plan:\n{plan}"
    );
    assert!(
        !plan.contains("Seq Scan"),
        "{what} must read through an index, not scan the table:\n{plan}"
    );
    let page = ids(store, query).await;
    assert!(!page.is_empty(), "{what}: the test data has such keys");
}

/// The ids of the page the store answers.
async fn ids(store: &PgKeyStore, query: &KeyQuery) -> Vec<String> {
    store
        .list_page(query)
        .await
        .expect("list_page")
        .items
        .iter()
        .map(|r| r.id().to_string())
        .collect()
}

#[tokio::test]
async fn every_query_but_search_reads_through_an_index() {
    let store = fresh_store().await;
    load(&store).await;
    let first = KeyQuery::new(now());
    assert_indexed(&store, "the first page", &first).await;

    // A second page, after the first one's cursor.
    let next = store.list_page(&first).await.unwrap().next.expect("more");
    assert_indexed(
        &store,
        "the second page",
        &first.clone().after(&next).unwrap(),
    )
    .await;

    for state in KeyFilter::ALL {
        let query = KeyQuery::new(now()).with_state(state);
        assert_indexed(&store, &format!("state={state}"), &query).await;
    }
    for sort in [
        "-created",
        "created",
        "-last_used",
        "last_used",
        "-expires",
        "expires",
    ] {
        let sort = KeySort::parse(sort).unwrap();
        let query = KeyQuery::new(now()).with_sort(sort);
        assert_indexed(&store, &format!("sort={sort}"), &query).await;
        // The second page of that sort, from a cursor in its middle.
        let page = store.list_page(&query).await.unwrap();
        let cursor: PageCursor = page.next.expect("more than a page");
        let after = query.clone().after(&cursor).unwrap();
        assert_indexed(&store, &format!("sort={sort}, second page"), &after).await;
    }
    for scope in ["admin:keys", "billing:read", "reports:write"] {
        let query = KeyQuery::new(now()).with_scope(Scope::new(scope).unwrap());
        assert_indexed(&store, &format!("scope={scope}"), &query).await;
    }
    let revoked_by_use = KeyQuery::new(now())
        .with_state(KeyFilter::Revoked)
        .with_sort(KeySort::parse("-last_used").unwrap());
    assert_indexed(&store, "state=revoked&sort=-last_used", &revoked_by_use).await;

    // `q` may scan; it must still find the one key, and only it.
    let search = KeyQuery::new(now()).with_search("SERVICE 12345").unwrap();
    assert_eq!(ids(&store, &search).await, ["0000000000012345"]);
    drop_table(&store).await;
}

/// Every list query of one tenant (DESIGN §14): each sort, first and second page, reads
/// through that sort's tenant index; the state and scope filters read through an index
/// too; and every page holds that tenant's keys only.
#[tokio::test]
async fn every_query_of_one_tenant_reads_through_an_index() {
    let store = fresh_store().await;
    load(&store).await;
    let tenant = TenantId::new("org-3").unwrap();
    let of_tenant = || KeyQuery::new(now()).with_tenant(tenant.clone());
    let tenants_of = |query: KeyQuery| {
        let store = &store;
        async move {
            let page = store.list_page(&query).await.expect("list_page");
            page.items
                .iter()
                .map(|r| r.tenant().map(|t| t.as_str().to_owned()))
                .collect::<Vec<_>>()
        }
    };
    for (sort, index) in [
        ("-created", "_tcreate"),
        ("created", "_tcreate"),
        ("-last_used", "_tused"),
        ("last_used", "_tused"),
        ("-expires", "_texpire"),
        ("expires", "_texpire"),
    ] {
        let sort = KeySort::parse(sort).unwrap();
        let query = of_tenant().with_sort(sort);
        let index = format!("{}{index}", store.table());
        assert_through(&store, &format!("tenant, sort={sort}"), &query, &index).await;
        let page = store.list_page(&query).await.unwrap();
        let after = query.clone().after(&page.next.expect("more")).unwrap();
        assert_through(
            &store,
            &format!("tenant, sort={sort}, page 2"),
            &after,
            &index,
        )
        .await;
        for tenants in [tenants_of(query).await, tenants_of(after).await] {
            assert_eq!(tenants.len(), 100, "a full page");
            assert!(
                tenants.iter().all(|t| t.as_deref() == Some("org-3")),
                "{tenants:?}"
            );
        }
    }
    for state in KeyFilter::ALL {
        let query = of_tenant().with_state(state);
        assert_indexed(&store, &format!("tenant, state={state}"), &query).await;
    }
    for scope in ["admin:keys", "billing:read"] {
        let query = of_tenant().with_scope(Scope::new(scope).unwrap());
        assert_indexed(&store, &format!("tenant, scope={scope}"), &query).await;
    }
    // A tenant with no keys: through an index, and nothing.
    let nobody = KeyQuery::new(now()).with_tenant(TenantId::new("org-none").unwrap());
    let plan = store.explain_list_page(&nobody).await.unwrap().join("\n");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(ids(&store, &nobody).await.is_empty());
    drop_table(&store).await;
}

/// As `assert_indexed`, and the plan reads the index named `index`.
async fn assert_through(store: &PgKeyStore, what: &str, query: &KeyQuery, index: &str) {
    assert_indexed(store, what, query).await;
    let plan = store.explain_list_page(query).await.unwrap().join("\n");
    assert!(plan.contains(index), "{what}: not through {index}:\n{plan}");
}

#[tokio::test]
async fn migrate_adds_the_listing_indexes_to_a_table_made_before_them() {
    let store = fresh_store().await;
    let indexes = |store: &PgKeyStore| {
        let pool = store.pool().clone();
        let (schema, table) = (store.schema().to_owned(), store.table().to_owned());
        async move {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes
                 WHERE schemaname = $1 AND tablename = $2 ORDER BY 1",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap();
            names
        }
    };
    let table = store.table().to_owned();
    let listing = [
        "_created", "_used", "_expires", "_revoked", "_stops", "_scopes", "_tcreate", "_tused",
        "_texpire",
    ];
    let all = indexes(&store).await;
    for suffix in listing {
        let name = format!("{table}{suffix}");
        assert!(all.contains(&name), "migrate creates {name}: {all:?}");
    }
    // As the release before paging left it: without the listing indexes (and without
    // the tenant ones, which came later still).
    for suffix in listing {
        exec(
            store.pool(),
            format!("DROP INDEX \"{}\".\"{table}{suffix}\"", store.schema()),
        )
        .await;
    }
    store.migrate().await.expect("migrate an older table");
    assert_eq!(indexes(&store).await, all);
    drop_table(&store).await;
}
