//! Client authentication at the proxy: every method and kind of stored password, and
//! refusals coded and worded as PostgreSQL's own, compared with a direct login.

use anyhow::{Context, Result};
use pgshard_config::AuthMethod;
use pgshard_tests::wire::{startup_packet, RawConnection};
use pgshard_tests::{connect, Cluster, Node, ProxyOptions, ProxyUser, TestProxy, User};

/// What a login attempt came to: the session's user, or the refusal's SQLSTATE and message.
type Outcome = Result<String, (String, String)>;

async fn try_login(addr: std::net::SocketAddr, user: &User) -> Outcome {
    let client = connect(addr, user).await.map_err(refusal)?;
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(refusal)?;
    Ok(row.get(0))
}

fn refusal(error: tokio_postgres::Error) -> (String, String) {
    match error.as_db_error() {
        Some(db) => (db.code().code().to_string(), db.message().to_string()),
        None => ("(no SQLSTATE)".to_string(), error.to_string()),
    }
}

/// The logins every configuration must treat as PostgreSQL does.
fn attempts() -> Vec<(&'static str, User)> {
    vec![
        ("right password", User::app()),
        ("wrong password", User::new("app", "wrong", "app")),
        ("unknown user", User::new("nobody", "app", "app")),
        ("unknown database", User::new("app", "app", "x")),
    ]
}

/// The authentication request code the proxy opens with (10 SASL, 5 md5, 3 cleartext).
async fn requested_method(proxy: &TestProxy) -> Result<i32> {
    let mut conn = RawConnection::connect(proxy.addr()).await?;
    conn.send_bytes(&startup_packet(&[("user", "app"), ("database", "app")]))
        .await?;
    let request = conn.expect_message().await?;
    anyhow::ensure!(
        request.tag == b'R',
        "not an authentication request: {request:?}"
    );
    let code = request.body.get(..4).context("short request")?;
    Ok(i32::from_be_bytes([code[0], code[1], code[2], code[3]]))
}

/// Checks every attempt through a proxy configured with `method` and `users` against
/// the same attempt made directly on the primary.
async fn check_logins(
    primary: &Node,
    method: AuthMethod,
    users: Vec<ProxyUser>,
    expected_request: i32,
) -> Result<()> {
    let proxy = TestProxy::start(
        primary,
        ProxyOptions {
            auth_method: method,
            users,
            ..ProxyOptions::default()
        },
    )
    .await?;
    assert_eq!(
        requested_method(&proxy).await?,
        expected_request,
        "{method:?}: the proxy asked for another kind of password"
    );
    for (what, user) in attempts() {
        let direct = try_login(primary.addr(), &user).await;
        let proxied = try_login(proxy.addr(), &user).await;
        assert_eq!(
            proxied, direct,
            "{method:?}, {what}: through the proxy (left) and directly (right)"
        );
    }
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_method_accepts_and_refuses_as_postgresql_does() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = cluster.shard(0).primary();

    // The refusals themselves, worded as PostgreSQL words them.
    let expectations = [
        (
            User::new("app", "wrong", "app"),
            "28P01",
            "password authentication failed for user \"app\"",
        ),
        (
            User::new("nobody", "app", "app"),
            "28P01",
            "password authentication failed for user \"nobody\"",
        ),
        (
            User::new("app", "app", "x"),
            "3D000",
            "database \"x\" does not exist",
        ),
    ];
    let proxy = TestProxy::start(primary, ProxyOptions::default()).await?;
    for (user, code, message) in expectations {
        assert_eq!(
            try_login(proxy.addr(), &user).await,
            Err((code.to_string(), message.to_string())),
            "{user:?}"
        );
    }
    proxy.shutdown().await;

    let plain = vec![ProxyUser::plain(&User::app())];
    check_logins(primary, AuthMethod::ScramSha256, plain.clone(), 10).await?;
    check_logins(primary, AuthMethod::Md5, plain.clone(), 5).await?;
    check_logins(primary, AuthMethod::Cleartext, plain, 3).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_verifiers_authenticate_without_the_plaintext_password() -> Result<()> {
    let cluster = Cluster::start(1, 0).await?;
    let primary = cluster.shard(0).primary();
    let superuser = primary.client(&User::postgres()).await?;
    // The server's own SCRAM verifier for app, and the md5 one PostgreSQL would store.
    let scram: String = superuser
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'",
            &[],
        )
        .await?
        .get(0);
    anyhow::ensure!(scram.starts_with("SCRAM-SHA-256$"), "{scram}");
    let md5: String = superuser
        .query_one("SELECT 'md5' || md5('app' || 'app')", &[])
        .await?
        .get(0);
    let verifier = |password: &str| {
        vec![ProxyUser {
            name: "app".to_string(),
            password: password.to_string(),
            server_password: Some("app".to_string()),
        }]
    };

    check_logins(primary, AuthMethod::ScramSha256, verifier(&scram), 10).await?;
    check_logins(primary, AuthMethod::Md5, verifier(&md5), 5).await?;
    check_logins(primary, AuthMethod::Cleartext, verifier(&scram), 3).await?;
    Ok(())
}
