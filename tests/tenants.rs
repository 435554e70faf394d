//! Tenants (DESIGN §14), as an attacker would try them through the manager: an actor of
//! one tenant names another tenant's keys, asks for its rows, creates keys in it. The
//! admin router's isolation suite (tower-apikey-admin) repeats this over HTTP.

use std::time::Duration;

use proptest::prelude::*;
use tower_apikey::event::{EventLog, EventQuery};
use tower_apikey::manager::{OldKeyPlan, Tenancy};
use tower_apikey::record::{KeyName, TenantId};
use tower_apikey::store::KeyUpdate;
use tower_apikey::usage::TracingUsageSink;
use tower_apikey::{
    Actor, InMemoryKeyStore, KeyId, KeyManager, KeyRecord, ManagerError, NewKey, Scopes,
};

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("a valid tenant id")
}

fn person(name: &str, tenancy: Tenancy) -> Actor {
    let may_grant = Scopes::new(["reports:*", "admin:keys"]).expect("valid scopes");
    Actor::person(name, may_grant, tenancy).expect("a valid name")
}

fn manager() -> KeyManager<InMemoryKeyStore> {
    KeyManager::builder(InMemoryKeyStore::new())
        .events(EventLog::new(InMemoryKeyStore::new()))
        .usage_sink(TracingUsageSink)
        .build()
}

/// A manager whose events live in its own store, with keys of acme, of globex and of
/// the application itself.
async fn world() -> (KeyManager<InMemoryKeyStore>, [KeyRecord; 3]) {
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::builder(store.clone())
        .events(EventLog::new(store))
        .build();
    let make = |name: &str, tenant_id: Option<&str>| {
        let mut new = NewKey::new(name, ["reports:read"]);
        if let Some(t) = tenant_id {
            new = new.tenant(tenant(t));
        }
        new
    };
    let acme = manager
        .create(make("acme-sync", Some("acme")))
        .await
        .unwrap();
    let globex = manager
        .create(make("globex-sync", Some("globex")))
        .await
        .unwrap();
    let own = manager.create(make("own", None)).await.unwrap();
    (manager, [acme.record, globex.record, own.record])
}

fn is_not_found(result: Result<impl std::fmt::Debug, ManagerError>, id: &KeyId) -> bool {
    matches!(result, Err(ManagerError::NotFound(found)) if found == *id)
}

/// Everything an actor could change about `record`, and its events, to compare.
async fn snapshot(manager: &KeyManager<InMemoryKeyStore>, id: &KeyId) -> String {
    let record = manager.get(id).await.expect("still there");
    let events = manager
        .events()
        .expect("an event log")
        .events(&EventQuery::new().key(*id))
        .await
        .expect("events");
    format!("{record:?} {:?}", events.items)
}

#[tokio::test]
async fn another_tenants_key_is_not_found_and_unchanged_by_every_call() {
    let (manager, [_, globex, own]) = world().await;
    let acme_admin = person("ann@acme.example", Tenancy::Tenant(tenant("acme")));
    let as_acme = manager.acting_as(&acme_admin);
    for target in [&globex, &own] {
        let id = target.id();
        let before = snapshot(&manager, id).await;
        assert!(is_not_found(as_acme.get(id).await, id));
        assert!(is_not_found(as_acme.heirs(id).await, id));
        assert!(is_not_found(as_acme.rotate(id, None).await, id));
        assert!(is_not_found(
            as_acme
                .rotate_with(id, OldKeyPlan::Overlap(Some(Duration::ZERO)))
                .await,
            id
        ));
        assert!(is_not_found(
            as_acme
                .rotate_until_first_use(id, Duration::from_secs(60))
                .await,
            id
        ));
        assert!(is_not_found(as_acme.revoke(id).await, id));
        let rename = KeyUpdate::new().name(KeyName::new("renamed").expect("a name"));
        assert!(is_not_found(as_acme.update(id, rename).await, id));
        assert!(is_not_found(as_acme.daily_requests(id, 7).await, id));
        let events = as_acme.events(EventQuery::new().key(*id)).await.unwrap();
        assert!(events.items.is_empty(), "another tenant's events: none");
        assert_eq!(snapshot(&manager, id).await, before, "{id} unchanged");
    }
    // The same error, to the letter, as an id no key has.
    let unknown = KeyId::new("AAAAAAAAAAAAAAAA").unwrap();
    assert_eq!(
        as_acme.get(&unknown).await.unwrap_err().to_string(),
        "no key with id AAAAAAAAAAAAAAAA"
    );
    assert_eq!(
        as_acme.get(globex.id()).await.unwrap_err().to_string(),
        format!("no key with id {}", globex.id())
    );
}

#[tokio::test]
async fn a_tenants_actor_creates_in_its_tenant_only() {
    let (manager, _) = world().await;
    let acme_admin = person("ann@acme.example", Tenancy::Tenant(tenant("acme")));
    let as_acme = manager.acting_as(&acme_admin);
    let made = as_acme
        .create(NewKey::new("export", ["reports:read"]))
        .await
        .expect("created");
    assert_eq!(
        made.record.tenant(),
        Some(&tenant("acme")),
        "in the actor's tenant"
    );
    let same = as_acme
        .create(NewKey::new("export-2", ["reports:read"]).tenant(tenant("acme")))
        .await
        .expect("naming its own tenant is fine");
    assert_eq!(same.record.tenant(), Some(&tenant("acme")));
    let keys = manager.list().await.unwrap().len();
    let refused = as_acme
        .create(NewKey::new("planted", ["reports:read"]).tenant(tenant("globex")))
        .await;
    match refused {
        Err(ManagerError::OtherTenant { actor, asked }) => {
            assert_eq!((actor.as_str(), asked.as_str()), ("acme", "globex"));
        }
        other => panic!("expected OtherTenant, got {other:?}"),
    }
    assert_eq!(manager.list().await.unwrap().len(), keys, "nothing stored");

    // Rotation keeps the tenant, whoever rotates; an operator creates in any tenant.
    let operator = person("ops@example.com", Tenancy::Operator);
    let rotated = manager
        .acting_as(&operator)
        .rotate(made.record.id(), None)
        .await
        .expect("rotated");
    assert_eq!(rotated.record.tenant(), Some(&tenant("acme")));
    let theirs = manager
        .acting_as(&operator)
        .create(NewKey::new("for-globex", ["reports:read"]).tenant(tenant("globex")))
        .await
        .expect("an operator creates in any tenant");
    assert_eq!(theirs.record.tenant(), Some(&tenant("globex")));
}

#[tokio::test]
async fn lists_and_events_show_the_actors_tenant_only() {
    let (manager, [acme, globex, own]) = world().await;
    let acme_admin = person("ann@acme.example", Tenancy::Tenant(tenant("acme")));
    let as_acme = manager.acting_as(&acme_admin);
    let ids = |page: tower_apikey::store::Page<KeyRecord>| {
        page.items.iter().map(|r| *r.id()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(as_acme.list_page(manager.key_query()).await.unwrap()),
        [*acme.id()]
    );
    // Asking for another tenant gives an empty page, not that tenant's keys.
    let asked = manager.key_query().with_tenant(tenant("globex"));
    assert_eq!(ids(as_acme.list_page(asked).await.unwrap()), []);
    let searched = manager.key_query().with_search("sync").unwrap();
    assert_eq!(
        ids(as_acme.list_page(searched).await.unwrap()),
        [*acme.id()]
    );

    let events = as_acme.events(EventQuery::new()).await.unwrap();
    assert!(!events.items.is_empty());
    assert!(events.items.iter().all(|e| e.key_id() == acme.id()));
    let asked = EventQuery::new().with_tenant(tenant("globex"));
    assert!(as_acme.events(asked).await.unwrap().items.is_empty());

    // An operator sees every tenant, and filters by one.
    let operator = person("ops@example.com", Tenancy::Operator);
    let as_ops = manager.acting_as(&operator);
    let mut all = ids(as_ops.list_page(manager.key_query()).await.unwrap());
    all.sort();
    let mut want = vec![*acme.id(), *globex.id(), *own.id()];
    want.sort();
    assert_eq!(all, want);
    let filtered = manager.key_query().with_tenant(tenant("globex"));
    assert_eq!(
        ids(as_ops.list_page(filtered).await.unwrap()),
        [*globex.id()]
    );
}

#[tokio::test]
async fn an_admin_key_acts_for_its_own_tenant() {
    let manager = manager();
    let admin = manager
        .create(NewKey::new("acme-admin", ["admin:keys", "reports:*"]).tenant(tenant("acme")))
        .await
        .unwrap();
    let actor = Actor::key(&admin.record.identity());
    assert_eq!(actor.tenancy(), &Tenancy::Tenant(tenant("acme")));
    let app_admin = manager
        .create(NewKey::new("app-admin", ["admin:keys"]))
        .await
        .unwrap();
    assert_eq!(
        Actor::key(&app_admin.record.identity()).tenancy(),
        &Tenancy::Operator,
        "a key of no tenant is the application's own: an operator"
    );
}

/// One step of the property test: who acts, on what.
#[derive(Debug, Clone)]
enum Op {
    Create { tenant: Option<u8> },
    Get,
    Rotate,
    Revoke,
    Rename,
    Heirs,
    Usage,
    Events,
    List { tenant: Option<u8> },
}

const TENANTS: [&str; 3] = ["acme", "globex", "Acme"];

fn op() -> impl Strategy<Value = Op> {
    let tenant = proptest::option::of(0u8..3);
    prop_oneof![
        tenant.clone().prop_map(|tenant| Op::Create { tenant }),
        Just(Op::Get),
        Just(Op::Rotate),
        Just(Op::Revoke),
        Just(Op::Rename),
        Just(Op::Heirs),
        Just(Op::Usage),
        Just(Op::Events),
        tenant.prop_map(|tenant| Op::List { tenant }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random operations by random actors of random tenants never read or change
    /// another tenant's key.
    #[test]
    fn no_actor_reads_or_changes_another_tenants_key(
        steps in proptest::collection::vec((0usize..4, op(), 0usize..64), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let store = InMemoryKeyStore::new();
            let manager = KeyManager::builder(store.clone()).events(EventLog::new(store)).build();
            // Actors 0-2 are of the three tenants; 3 is an operator.
            let actors: Vec<Actor> = TENANTS
                .iter()
                .map(|t| person(&format!("admin@{t}.example"), Tenancy::Tenant(tenant(t))))
                .chain([person("ops@example.com", Tenancy::Operator)])
                .collect();
            let mut keys: Vec<KeyRecord> = Vec::new();
            for (i, t) in TENANTS.iter().enumerate() {
                let made = manager
                    .create(NewKey::new(format!("seed-{i}"), ["reports:read"]).tenant(tenant(t)))
                    .await
                    .unwrap();
                keys.push(made.record);
            }
            for (who, op, target) in steps {
                let actor = &actors[who];
                let acting = manager.acting_as(actor);
                let key = keys[target % keys.len()].clone();
                let id = *key.id();
                let foreign = !actor.tenancy().sees(&key);
                let before = snapshot(&manager, &id).await;
                let outcome: Result<Vec<KeyRecord>, ManagerError> = match op {
                    Op::Create { tenant: asked } => {
                        let mut new = NewKey::new("made", ["reports:read"]);
                        if let Some(t) = asked {
                            new = new.tenant(tenant(TENANTS[t as usize]));
                        }
                        acting.create(new).await.map(|c| vec![c.record])
                    }
                    Op::Get => acting.get(&id).await.map(|r| vec![r]),
                    Op::Rotate => acting.rotate(&id, Some(Duration::ZERO)).await.map(|c| vec![c.record]),
                    Op::Revoke => acting.revoke(&id).await.map(|r| vec![r.record]),
                    Op::Rename => acting
                        .update(&id, KeyUpdate::new().name(KeyName::new("renamed").unwrap()))
                        .await
                        .map(|r| vec![r]),
                    Op::Heirs => acting.heirs(&id).await,
                    Op::Usage => acting.daily_requests(&id, 3).await.map(|_| Vec::new()),
                    Op::Events => {
                        let page = acting.events(EventQuery::new()).await.unwrap();
                        for event in &page.items {
                            let of = manager.get(event.key_id()).await.unwrap();
                            assert!(actor.tenancy().sees(&of), "{actor:?} saw {event:?}");
                        }
                        Ok(Vec::new())
                    }
                    Op::List { tenant: asked } => {
                        let mut query = manager.key_query();
                        if let Some(t) = asked {
                            query = query.with_tenant(tenant(TENANTS[t as usize]));
                        }
                        acting.list_page(query).await.map(|p| p.items)
                    }
                };
                // Whatever it answered, every record it handed back is one it may see.
                if let Ok(records) = &outcome {
                    for record in records {
                        assert!(actor.tenancy().sees(record), "{actor:?} got {record:?}");
                    }
                    if let Op::Create { .. } | Op::Rotate = op {
                        keys.extend(records.iter().cloned());
                    }
                }
                if foreign && !matches!(op, Op::Create { .. } | Op::Events | Op::List { .. }) {
                    assert!(is_not_found(outcome, &id), "{actor:?} {op:?} on {id}");
                    assert_eq!(snapshot(&manager, &id).await, before, "{op:?} changed {id}");
                }
            }
        });
    }
}
