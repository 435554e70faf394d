//! The audit trail on PostgreSQL: the event-store conformance suite, `expiring` with
//! two instances on one database, and the events of a key's life on the manual clock.
//! Needs `APIKEY_TEST_DATABASE_URL` (see tests/postgres.rs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tower_apikey::event::EventQuery;
use tower_apikey::event::{EventLog, EventType};
use tower_apikey::testing::ManualClock;
use tower_apikey::{KeyManager, NewKey};
use tower_apikey_postgres::PgKeyStore;

const SCHEMA: &str = "apikey_tests";

fn database_url() -> String {
    std::env::var("APIKEY_TEST_DATABASE_URL").expect(
        "set APIKEY_TEST_DATABASE_URL to a PostgreSQL database these tests may create tables in",
    )
}

async fn pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&database_url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to APIKEY_TEST_DATABASE_URL: {e}"))
}

/// A table name no other test, run or process uses (tests/postgres.rs drops such
/// tables once they are an hour old).
fn unique_table() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "t{secs}_{}_a{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn fresh_store(pool: PgPool) -> PgKeyStore {
    let store = PgKeyStore::new(pool)
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(&unique_table())
        .unwrap();
    store.migrate().await.expect("migrate");
    store
}

mod pg_event_conformance {
    tower_apikey::testing::event_store_conformance_tests!(async {
        super::fresh_store(super::pool().await).await
    });
}

mod pg_usage_conformance {
    tower_apikey::testing::usage_conformance_tests!(async {
        super::fresh_store(super::pool().await).await
    });
}

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn migrate_twice_verifies_the_event_and_usage_tables() {
    let store = fresh_store(pool().await).await;
    store
        .migrate()
        .await
        .expect("a second migrate finds what the first made");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND tablename LIKE $2 ORDER BY 1",
    )
    .bind(SCHEMA)
    .bind(format!("{}%", store.table()))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let t = store.table();
    assert_eq!(
        tables,
        [
            t.to_owned(),
            format!("{t}_events"),
            format!("{t}_limits"),
            format!("{t}_linst"),
            format!("{t}_ubatch"),
            format!("{t}_usage")
        ]
    );
}

#[tokio::test]
async fn a_trigger_on_the_events_table_fails_migrate() {
    let store = fresh_store(pool().await).await;
    let events = format!("\"{SCHEMA}\".\"{}_events\"", store.table());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION \"{SCHEMA}\".\"{t}_f\"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;",
        t = store.table()
    )))
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER hide BEFORE INSERT ON {events} FOR EACH ROW EXECUTE FUNCTION \"{SCHEMA}\".\"{t}_f\"()",
        t = store.table()
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let error = store.migrate().await.unwrap_err().to_string();
    assert!(
        error.contains("hide") && error.contains("_events"),
        "{error}"
    );
}

#[tokio::test]
async fn expiring_fires_once_with_two_instances_on_one_database() {
    let first = fresh_store(pool().await).await;
    let second = PgKeyStore::new(pool().await)
        .with_schema(first.schema())
        .unwrap()
        .with_table(first.table())
        .unwrap();
    let clock = ManualClock::new(start());
    let (log_a, log_b) = (EventLog::new(first.clone()), EventLog::new(second.clone()));
    let a = KeyManager::builder(first)
        .clock(clock.clone())
        .events(log_a.clone())
        .build();
    let b = KeyManager::builder(second)
        .clock(clock.clone())
        .events(log_b.clone())
        .build();
    let key = a
        .create(NewKey::new("billing", ["reports:read"]).lifetime(DAY * 40))
        .await
        .unwrap();
    let id = *key.record.id();
    // 11 days in, 29 days are left: the 30-day threshold, once, by one instance.
    clock.advance(DAY * 11);
    let (fired_a, fired_b) = tokio::join!(a.warn_expiring(), b.warn_expiring());
    assert_eq!(fired_a.unwrap() + fired_b.unwrap(), 1);
    assert_eq!(
        a.warn_expiring().await.unwrap() + b.warn_expiring().await.unwrap(),
        0
    );
    assert_eq!(
        log_a.stats().stored + log_b.stats().stored,
        2,
        "created + one expiring"
    );
    // Then 7 and 1 days before the end, each once.
    clock.advance(DAY * 23);
    assert_eq!(
        b.warn_expiring().await.unwrap() + a.warn_expiring().await.unwrap(),
        1
    );
    clock.advance(DAY * 5 + Duration::from_secs(3600));
    assert_eq!(
        a.warn_expiring().await.unwrap() + b.warn_expiring().await.unwrap(),
        1
    );
    let page = log_b.events(&EventQuery::new().key(id)).await.unwrap();
    let days: Vec<Option<u32>> = page
        .items
        .iter()
        .filter(|e| e.kind() == EventType::Expiring)
        .map(|e| e.detail().days)
        .collect();
    assert_eq!(days, [Some(1), Some(7), Some(30)]);
    // Past its end a key is no longer warned about.
    clock.advance(DAY * 2);
    assert_eq!(a.warn_expiring().await.unwrap(), 0);
}

#[tokio::test]
async fn the_managers_events_name_the_actor_and_the_other_key() {
    let store = fresh_store(pool().await).await;
    let clock = ManualClock::new(start());
    let log = EventLog::new(store.clone());
    let manager = KeyManager::builder(store)
        .clock(clock.clone())
        .events(log.clone())
        .build();
    let admin = tower_apikey::Actor::person(
        "alice@example.com",
        tower_apikey::Scopes::new(["reports:*"]).unwrap(),
    )
    .unwrap();
    let old = manager
        .acting_as(&admin)
        .create(NewKey::new("billing", ["reports:read"]))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let new = manager
        .acting_as(&admin)
        .rotate(old.record.id(), Some(Duration::ZERO))
        .await
        .unwrap();
    manager.revoke(old.record.id()).await.unwrap(); // already revoked: no new event
    let events = log.events(&EventQuery::new()).await.unwrap().items;
    let seen: Vec<(EventType, String, Option<String>)> = events
        .iter()
        .map(|e| {
            (
                e.kind(),
                e.key_id().to_string(),
                e.actor().map(ToString::to_string),
            )
        })
        .collect();
    let alice = Some("alice@example.com".to_owned());
    let (o, n) = (old.record.id().to_string(), new.record.id().to_string());
    assert_eq!(
        seen,
        [
            (EventType::Revoked, o.clone(), alice.clone()),
            (EventType::Rotated, o.clone(), alice.clone()),
            (EventType::Created, n.clone(), alice.clone()),
            (EventType::Created, o.clone(), alice.clone()),
        ]
    );
    assert_eq!(events[1].detail().related_key_id, Some(*new.record.id()));
    assert_eq!(events[2].detail().related_key_id, Some(*old.record.id()));
}

/// Applies each batch to PostgreSQL, then reports a timeout the first time: a commit
/// whose answer was lost.
#[derive(Debug)]
struct CommittedThenTimedOut {
    store: PgKeyStore,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl tower_apikey::UsageSink for CommittedThenTimedOut {
    async fn record_usage(
        &self,
        batch: &[tower_apikey::usage::KeyUsage],
    ) -> Result<(), tower_apikey::usage::UsageSinkError> {
        self.store.record_usage(batch).await
    }

    async fn record_usage_batch(
        &self,
        batch: &tower_apikey::usage::UsageBatch<'_>,
    ) -> Result<tower_apikey::usage::UsageOutcome, tower_apikey::usage::UsageSinkError> {
        let outcome = self.store.record_usage_batch(batch).await?;
        if !self.failed.swap(true, Ordering::Relaxed) {
            return Err(tower_apikey::usage::UsageSinkError::Timeout(
                Duration::from_secs(30),
            ));
        }
        Ok(outcome)
    }
}

#[tokio::test]
async fn counts_survive_a_restart_and_a_retried_flush() {
    use tower_apikey::usage::{UsageCounts, UsageDay, UsageTracker};
    let store = fresh_store(pool().await).await;
    let clock = ManualClock::new(start());
    let log = EventLog::new(store.clone());
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .events(log.clone())
        .build();
    let key = manager
        .create(NewKey::new("billing", ["reports:read"]))
        .await
        .unwrap();
    let id = *key.record.id();
    let tracker = UsageTracker::builder(CommittedThenTimedOut {
        store: store.clone(),
        failed: Default::default(),
    })
    .events(log.clone())
    .build();
    for _ in 0..25 {
        tracker.record(&id, start());
    }
    assert!(
        tracker.flush().await.is_err(),
        "committed, reported as timed out"
    );
    tracker.flush().await.unwrap(); // the same batch again
    for _ in 0..5 {
        tracker.record(&id, start() + DAY);
    }
    tracker.shutdown().await.unwrap();
    // Another instance, after a restart, on a new pool.
    let restarted = PgKeyStore::new(pool().await)
        .with_schema(store.schema())
        .unwrap()
        .with_table(store.table())
        .unwrap();
    restarted.migrate().await.unwrap();
    let day = UsageDay::of(start());
    let counts = restarted
        .daily_requests(&id, day.previous(), day.next())
        .await
        .unwrap();
    assert_eq!(counts, [(day, 25), (day.next(), 5)]);
    // 30 days up to a day after: zero days included.
    clock.advance(DAY);
    let days = manager.daily_requests(&id, 30).await.unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[28], (day, 25));
    assert_eq!(days[29], (day.next(), 5));
    assert!(days[..28].iter().all(|&(_, n)| n == 0));
}

#[tokio::test]
async fn first_used_and_ended_key_used_appear_once_per_occasion() {
    use tower_apikey::usage::UsageTracker;
    let store = fresh_store(pool().await).await;
    let log = EventLog::new(store.clone());
    let manager = KeyManager::builder(store.clone())
        .clock(ManualClock::new(start()))
        .events(log.clone())
        .build();
    let key = manager
        .create(NewKey::new("feed", ["reports:read"]))
        .await
        .unwrap();
    let id = *key.record.id();
    let tracker = UsageTracker::builder(store.clone())
        .events(log.clone())
        .build();
    let kinds = || async {
        log.events(&EventQuery::new().key(id))
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.kind())
            .collect::<Vec<_>>()
    };
    for i in 0..3 {
        tracker.record(&id, start() + Duration::from_secs(i));
    }
    tracker.flush().await.unwrap();
    tracker.record(&id, start() + Duration::from_secs(10));
    tracker.flush().await.unwrap();
    assert_eq!(kinds().await, [EventType::FirstUsed, EventType::Created]);
    for _ in 0..5 {
        tracker.record_ended(&id, start() + Duration::from_secs(20));
    }
    tracker.flush().await.unwrap();
    tracker.flush().await.unwrap();
    let events = log.events(&EventQuery::new().key(id)).await.unwrap().items;
    assert_eq!(events[0].kind(), EventType::EndedKeyUsed);
    assert_eq!(events[0].detail().attempts, Some(5));
    assert_eq!(events.len(), 3, "one ended_key_used for the period");
}
