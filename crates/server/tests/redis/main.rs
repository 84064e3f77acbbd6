//! The shared counters (`wrenchline_server::counters`) against a real Redis: two
//! `RedisCounters` stand for two nodes of a cluster, and every limit they count holds across
//! both; with Redis gone each falls back to counting in its own process. Needs
//! `WRENCHLINE_TEST_REDIS_URL` (`scripts/with-redis.sh cargo nextest run -p wrenchline-server
//! --test redis`); the plain Rust suite leaves this binary out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use uuid::Uuid;
use wrenchline_server::counters::RedisCounters;
use wrenchline_server::limits::{FailureCounter, KeyedRates, Limits, SharedSlots};
use wrenchline_server::realtime::rates::{Action, UserRates};

fn redis_url() -> String {
    std::env::var("WRENCHLINE_TEST_REDIS_URL")
        .expect("WRENCHLINE_TEST_REDIS_URL: run under scripts/with-redis.sh")
}

async fn manager(url: &str) -> ConnectionManager {
    let client = redis::Client::open(url).expect("a Redis URL");
    ConnectionManager::new(client).await.expect("Redis answers")
}

/// Two nodes' counters on the same Redis.
async fn two_nodes(limits: &Limits) -> (Arc<RedisCounters>, Arc<RedisCounters>) {
    let url = redis_url();
    (
        Arc::new(RedisCounters::new(manager(&url).await, limits)),
        Arc::new(RedisCounters::new(manager(&url).await, limits)),
    )
}

/// A unique address, so runs of the suite on one Redis do not share budgets.
fn fresh_address() -> IpAddr {
    let n = Uuid::new_v4().as_u128();
    IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8])
}

#[tokio::test]
async fn realtime_rates_per_user_hold_across_nodes() {
    let limits = Limits {
        broadcasts_per_user_per_second: 3,
        joins_per_user_per_second: 1,
        ..Limits::default()
    };
    let (a, b) = two_nodes(&limits).await;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(a.admit(user, Action::Broadcast).await);
    assert!(b.admit(user, Action::Broadcast).await);
    assert!(a.admit(user, Action::Broadcast).await);
    assert!(
        !b.admit(user, Action::Broadcast).await,
        "the fourth broadcast in the same second, on the other node"
    );
    assert!(
        b.admit(other, Action::Broadcast).await,
        "another user's budget"
    );
    assert!(a.admit(user, Action::Join).await, "joins are counted apart");
    assert!(!b.admit(user, Action::Join).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(b.admit(user, Action::Join).await, "the budget refills");
    assert!(b.admit(user, Action::Broadcast).await);
}

#[tokio::test]
async fn sign_in_failures_hold_across_nodes_and_a_success_clears_them() {
    let limits = Limits {
        login_failures_per_account_and_address_per_minute: 3,
        ..Limits::default()
    };
    let (a, b) = two_nodes(&limits).await;
    let (la, lb) = (a.limiters(), b.limiters());
    let guesser = fresh_address();
    let account = format!("{}@example.com", Uuid::new_v4());
    for limiters in [&la, &lb, &la] {
        assert!(limiters.login(guesser, &account).await.is_ok());
        limiters.login_failed(guesser, &account).await;
    }
    let refused = lb.login(guesser, &account).await.unwrap_err();
    assert!(refused.to_string().contains("failed sign-ins"), "{refused}");
    assert!(
        la.login(fresh_address(), &account).await.is_ok(),
        "another address still signs in"
    );
    let key = wrenchline_server::limits::FailureKey {
        account: account.clone(),
        address: guesser,
    };
    let wait = a.blocked(&key).await.expect("blocked on every node");
    assert!(
        wait <= Duration::from_secs(60) && wait > Duration::from_secs(50),
        "{wait:?}"
    );
    b.succeeded(&key).await;
    assert!(
        a.blocked(&key).await.is_none(),
        "a success clears them everywhere"
    );
}

#[tokio::test]
async fn intakes_sign_ins_and_messages_hold_across_nodes() {
    let limits = Limits {
        intakes_per_address_per_hour: 2,
        login_per_address_per_minute: 2,
        messages_per_user_per_minute: 2,
        ..Limits::default()
    };
    let (a, b) = two_nodes(&limits).await;
    let (la, lb) = (a.limiters(), b.limiters());
    let address = fresh_address();
    assert!(la.intake(address).await.is_ok());
    assert!(lb.intake(address).await.is_ok());
    let refused = la.intake(address).await.unwrap_err();
    assert!(refused.to_string().contains("Too many"), "{refused}");
    assert!(lb.intake(fresh_address()).await.is_ok());

    let user = Uuid::new_v4();
    assert!(lb.message(user).await.is_ok());
    assert!(la.message(user).await.is_ok());
    assert!(lb.message(user).await.is_err());

    let account = format!("{}@example.com", Uuid::new_v4());
    assert!(la.login(address, &account).await.is_ok());
    assert!(lb.login(address, "other@example.com").await.is_ok());
    assert!(
        la.login(address, &account).await.is_err(),
        "attempts per address"
    );

    // The budgets are GCRA like the in-process ones: one more message after a minute / 2.
    let wait = a
        .check(
            "messages-user",
            user.to_string(),
            2,
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(
        wait <= Duration::from_secs(30) && wait > Duration::from_secs(25),
        "{wait:?}"
    );
}

#[tokio::test]
async fn connections_per_address_hold_across_nodes_and_are_freed() {
    let limits = Limits {
        connections_per_address: 2,
        ..Limits::default()
    };
    let (a, b) = two_nodes(&limits).await;
    let (la, lb) = (a.limiters(), b.limiters());
    let address = fresh_address();
    let first = la.connect(address).await.expect("first");
    let _second = lb
        .connect(address)
        .await
        .expect("second, on the other node");
    assert!(
        la.connect(address).await.is_none(),
        "a third from the address"
    );
    assert!(lb.connect(fresh_address()).await.is_some());
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        again = lb.connect(address).await;
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        again.is_some(),
        "a closed connection frees its slot on every node"
    );
    // Renewing keeps held slots; the count does not grow.
    a.renew_slots().await;
    b.renew_slots().await;
    assert!(la.connect(address).await.is_none());
    assert!(b.take(address, 3).await.is_some());
}

#[tokio::test]
async fn without_redis_each_node_counts_alone() {
    // A Redis of this test's own, stopped once the counters are connected.
    let dir = std::env::temp_dir().join(format!("wl-redis-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = None;
    for _ in 0..100 {
        if let Ok(c) = ConnectionManager::new(client.clone()).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limits = Limits {
        broadcasts_per_user_per_second: 2,
        intakes_per_address_per_hour: 1,
        connections_per_address: 1,
        login_failures_per_account_and_address_per_minute: 1,
        ..Limits::default()
    };
    let counters = Arc::new(RedisCounters::new(conn.expect("Redis started"), &limits));
    let limiters = counters.limiters();
    server.kill().unwrap();
    server.wait().unwrap();

    let started = std::time::Instant::now();
    let user = Uuid::new_v4();
    assert!(counters.admit(user, Action::Broadcast).await);
    assert!(counters.admit(user, Action::Broadcast).await);
    assert!(
        !counters.admit(user, Action::Broadcast).await,
        "the local budget holds"
    );
    let address = fresh_address();
    assert!(limiters.intake(address).await.is_ok());
    assert!(limiters.intake(address).await.is_err());
    let slot = limiters.connect(address).await.expect("a local slot");
    assert!(limiters.connect(address).await.is_none());
    drop(slot);
    assert!(limiters.connect(address).await.is_some());
    limiters.login_failed(address, "x@example.com").await;
    assert!(limiters.login(address, "x@example.com").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "after the first failure checks do not wait for Redis: {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
