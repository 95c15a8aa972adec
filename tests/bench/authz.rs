//! The cost of one authorization decision as the grants table grows: the
//! server's path (the grant from the server's grant cache, else one
//! primary-key lookup in `grants` through the read-only SQLite connections;
//! then the Casbin decision over the fixed policy), timed over many random
//! decisions at 1,000, 10,000 and 100,000 grants, the cache loaded as the
//! server loads it at start: the first time each question is asked, then the
//! same questions again. Peers in the same run: the table lookup alone (what
//! every decision costs without the cache, as with PostgreSQL) and Casbin's
//! own enforcement alone.
//!
//! Run: `cargo bench -p playground-api --bench authz`
//! Env: BENCH_DECISIONS (default 20000).

use std::time::Instant;

use chrono::Utc;
use playground_api::authz::{GrantCache, grant_of, grant_to_i16};
use playground_api::config::DatabaseConfig;
use playground_entities::{AssetKind, Role as StoredRole, grants, users};
use playground_policies::{Action, Authorizer, Grant, Kind, Role};
use sea_orm::{EntityTrait, Set, TransactionTrait};
use uuid::Uuid;

#[path = "support.rs"]
#[allow(dead_code)]
mod support;

use support::{env_usize, machine};

const N_USERS: usize = 1000;

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[tokio::main]
async fn main() {
    let n_decisions = env_usize("BENCH_DECISIONS", 20_000);
    let dir = tempfile::tempdir().unwrap();
    let config = DatabaseConfig {
        data_dir: dir.path().to_owned(),
        database_url: None,
    };
    let db = playground_api::db::connect(&config).await.unwrap();
    playground_api::db::migrate(&db).await.unwrap();
    let read = playground_api::db::readers(&config, &db).await.unwrap();
    let authorizer = Authorizer::load_default().await.unwrap();

    let now = Utc::now();
    let user_ids: Vec<Uuid> = (0..N_USERS).map(|_| Uuid::now_v7()).collect();
    for chunk in user_ids.chunks(200) {
        users::Entity::insert_many(chunk.iter().map(|id| users::ActiveModel {
            id: Set(*id),
            email: Set(format!("{id}@example.com")),
            display_name: Set("bench".to_owned()),
            role: Set(StoredRole::Developer),
            password_hash: Set("x".to_owned()),
            created_at: Set(now),
        }))
        .exec(&db)
        .await
        .unwrap();
    }

    println!("machine: {}", machine());
    println!("\n{n_decisions} random decisions (half on granted assets), SQLite");
    println!(
        "| grants | decision, first time µs | decision, again µs | table lookup alone µs | Casbin enforcement alone µs |"
    );
    println!("|---|---|---|---|---|");
    let mut granted: Vec<(Uuid, Uuid)> = Vec::new();
    let mut random = Lcg(42);
    for target in [1_000usize, 10_000, 100_000] {
        let txn = db.begin().await.unwrap();
        while granted.len() < target {
            let n = (target - granted.len()).min(500);
            let batch: Vec<(Uuid, Uuid)> = (0..n)
                .map(|_| {
                    let user = user_ids[random.next() as usize % N_USERS];
                    (Uuid::now_v7(), user)
                })
                .collect();
            grants::Entity::insert_many(batch.iter().map(|(asset, user)| grants::ActiveModel {
                asset_id: Set(*asset),
                user_id: Set(*user),
                asset_kind: Set(AssetKind::Program),
                permission: Set(grant_to_i16(Grant::Execute)),
                created_at: Set(now),
            }))
            .exec(&txn)
            .await
            .unwrap();
            granted.extend(batch);
        }
        txn.commit().await.unwrap();

        // The same question mix for every measure: half the pairs hold a
        // grant, half ask about an asset the user has none on.
        let questions: Vec<(Uuid, Uuid)> = (0..n_decisions)
            .map(|i| {
                let (asset, user) = granted[random.next() as usize % granted.len()];
                if i % 2 == 0 {
                    (user, asset)
                } else {
                    (user_ids[random.next() as usize % N_USERS], Uuid::now_v7())
                }
            })
            .collect();
        let cache = GrantCache::new();
        cache.preload(&read).await.unwrap();
        let decide = async |questions: &[(Uuid, Uuid)]| {
            let started = Instant::now();
            let mut allowed = 0usize;
            for (user, asset) in questions {
                let grant = cache.get(&read, *user, *asset).await.unwrap();
                allowed += usize::from(authorizer.allows(
                    Role::Developer,
                    Kind::Program,
                    Action::Execute,
                    grant,
                ));
            }
            assert!(
                allowed >= questions.len() / 2,
                "the granted half is allowed"
            );
            started.elapsed().as_secs_f64() / questions.len() as f64 * 1e6
        };
        let cold = decide(&questions).await;
        let warm = decide(&questions).await;

        let started = Instant::now();
        for (user, asset) in &questions {
            std::hint::black_box(grant_of(&read, *user, *asset).await.unwrap());
        }
        let lookup = started.elapsed().as_secs_f64() / n_decisions as f64 * 1e6;

        let started = Instant::now();
        for (i, _) in questions.iter().enumerate() {
            let grant = if i % 2 == 0 {
                Grant::Execute
            } else {
                Grant::None
            };
            std::hint::black_box(authorizer.enforce_now(
                Role::Developer,
                Kind::Program,
                Action::Execute,
                grant,
            ));
        }
        let casbin = started.elapsed().as_secs_f64() / n_decisions as f64 * 1e6;
        println!("| {target} | {cold:.1} | {warm:.2} | {lookup:.1} | {casbin:.2} |");
    }
}
