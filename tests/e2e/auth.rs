//! Authentication: login, missing and malformed credentials, forged, unsigned and expired
//! JWTs, and API tokens (shown once, stored hashed, `lastUsedAt`, revocation, expiry).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use playground_entities::api_tokens;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::support::jwt::{claims_of, sign_hs256, unsigned};
use crate::support::*;

const ME: &str = "{ me { id email role } }";
const JWT_SECRET: &str = "e2e-known-jwt-secret-7f3a9c1d5e";
const LIST_API_TOKENS: &str = "{ apiTokens { id prefix lastUsedAt } }";
const CREATE_API_TOKEN: &str = "mutation($name: String!, $days: Int) { createApiToken(name: $name, expiresInDays: $days) { token apiToken { id name prefix createdAt expiresAt lastUsedAt } } }";

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

e2e_test!(
    login_returns_a_working_token_and_rejects_wrong_credentials,
    |app| async move {
        let data = app
        .gql_ok(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token user { id email role displayName createdAt } } }",
            json!({ "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD }),
        )
        .await;
        let token = data["login"]["token"].as_str().expect("a token").to_owned();
        assert_eq!(data["login"]["user"]["role"], "ADMIN");
        let me = app.gql_ok(Some(&token), ME, json!({})).await;
        assert_eq!(me["me"]["id"], data["login"]["user"]["id"]);
        assert_eq!(me["me"]["email"], ADMIN_EMAIL);

        for (email, password) in [
            (ADMIN_EMAIL, "wrong password"),
            ("nobody@example.com", ADMIN_PASSWORD),
        ] {
            let error = app
            .gql_err(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": password }),
            )
            .await;
            assert_eq!(error.code, "UNAUTHENTICATED", "{email}");
            assert!(
                error.message.contains("wrong email or password"),
                "{error:?}"
            );
        }
    }
);

e2e_test!(
    missing_or_malformed_credentials_are_unauthenticated,
    |app| async move {
        let operations = [
            ME,
            "{ executors { kind } }",
            "{ programs { totalCount } }",
            "{ environments { totalCount } }",
            "{ runs { totalCount } }",
            "{ users { email } }",
            "mutation { createApiToken(name: \"x\") { token } }",
            "mutation { createProgram(input: { name: \"p\", runtime: PYTHON, entrypoint: \"a.py\", files: [{ path: \"a.py\", content: \"\" }] }) { id } }",
        ];
        let bad_tokens = [
            None,
            Some("garbage"),
            Some("pgt_unknowntoken0123456789"),
            Some("a.b.c"),
        ];
        for token in bad_tokens {
            for operation in operations {
                let code = app.gql_err_code(token, operation, json!({})).await;
                assert_eq!(code, "UNAUTHENTICATED", "{operation} with token {token:?}");
            }
        }
        // A non-Bearer Authorization header is no credential either.
        let response = app
            .http()
            .post(app.url("/graphql"))
            .header("Authorization", format!("Basic {}", "YWRtaW46YWRtaW4="))
            .json(&json!({ "query": ME }))
            .send()
            .await
            .expect("POST");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{body}"
        );
        // login works whatever the header says.
        let data = app
            .gql_ok(
                Some("garbage"),
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD }),
            )
            .await;
        assert!(data["login"]["token"].is_string());
    }
);

e2e_test!(
    forged_unsigned_and_expired_jwts_are_rejected,
    TestApp::builder().env("PLAYGROUND_JWT_SECRET", JWT_SECRET),
    |app| async move {
        let real = app.admin_token().await;
        let claims = claims_of(&real);
        let exp = claims["exp"]
            .as_i64()
            .unwrap_or_else(|| panic!("the JWT has a numeric exp: {claims}"));
        let lifetime = exp - unix_now();
        assert!(
            (43_100..=43_300).contains(&lifetime),
            "default expiry is 12 h, got {lifetime} s"
        );

        // Positive control: the same claims signed by us with the server's secret work, so the
        // rejections below are about the signature and the expiry, not about our encoding.
        let resigned = sign_hs256(&claims, JWT_SECRET.as_bytes());
        let me = app.gql_ok(Some(&resigned), ME, json!({})).await;
        assert_eq!(me["me"]["email"], ADMIN_EMAIL);

        let other_secret = sign_hs256(&claims, b"some-other-secret-entirely-000000");
        let alg_none = unsigned(&claims);
        let mut expired_claims = claims.clone();
        expired_claims["exp"] = json!(unix_now() - 3600);
        if expired_claims.get("iat").is_some() {
            expired_claims["iat"] = json!(unix_now() - 7200);
        }
        if expired_claims.get("nbf").is_some() {
            expired_claims["nbf"] = json!(unix_now() - 7200);
        }
        let expired = sign_hs256(&expired_claims, JWT_SECRET.as_bytes());
        let mut longer_claims = claims.clone();
        longer_claims["exp"] = json!(exp + 86_400);
        let signature = real.rsplit('.').next().expect("signature");
        let resigned_longer = sign_hs256(&longer_claims, JWT_SECRET.as_bytes());
        let (signing_input, _) = resigned_longer.rsplit_once('.').expect("a JWT");
        let tampered = format!("{signing_input}.{signature}");
        for (label, token) in [
            ("another secret", other_secret),
            ("alg none", alg_none),
            ("expired", expired),
            ("tampered payload", tampered),
        ] {
            let code = app.gql_err_code(Some(&token), ME, json!({})).await;
            assert_eq!(code, "UNAUTHENTICATED", "{label}");
        }
    }
);

e2e_test!(
    jwt_expiry_is_configurable,
    TestApp::builder().env("PLAYGROUND_JWT_EXPIRY_SECONDS", 1),
    |app| async move {
        let token = app.admin_token().await;
        let exp = claims_of(&token)["exp"].as_i64().expect("numeric exp");
        assert!(
            exp <= unix_now() + 2,
            "exp must follow PLAYGROUND_JWT_EXPIRY_SECONDS=1, is {} s ahead",
            exp - unix_now()
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let code = app.gql_err_code(Some(&token), ME, json!({})).await;
        assert_eq!(code, "UNAUTHENTICATED", "an expired JWT");
    }
);

async fn find_token_row(db: &TestDb, prefix: &str) -> api_tokens::Model {
    let connection = db.connect().await;
    let row = api_tokens::Entity::find()
        .filter(api_tokens::Column::Prefix.eq(prefix))
        .one(&connection)
        .await
        .expect("query api_tokens")
        .unwrap_or_else(|| panic!("no api_tokens row with prefix {prefix}"));
    let _ = connection.close().await;
    row
}

db_test!(
    api_tokens_are_shown_once_used_and_revoked,
    |db| async move {
        let app = db.start(TestApp::builder()).await;
        let developer = app.create_user("tokens@example.com", "DEVELOPER").await;
        let created = app
            .gql_ok(Some(&developer), CREATE_API_TOKEN, json!({ "name": "ci" }))
            .await["createApiToken"]
            .clone();
        let token = created["token"].as_str().expect("token").to_owned();
        let api_token = &created["apiToken"];
        let prefix = api_token["prefix"].as_str().expect("prefix").to_owned();
        assert!(prefix.starts_with("pgt_"), "prefix {prefix}");
        assert!(
            token.starts_with(&prefix) && token.len() > prefix.len() + 16,
            "token {token} / prefix {prefix}"
        );
        assert_eq!(api_token["name"], "ci");
        assert!(
            api_token["expiresAt"].is_null(),
            "no expiry asked: {api_token}"
        );
        assert!(
            api_token["lastUsedAt"].is_null(),
            "never used yet: {api_token}"
        );

        let row = find_token_row(&db, &prefix).await;
        assert_ne!(row.token_hash, token, "the token is stored hashed");
        assert!(
            !row.token_hash.contains(&token[prefix.len()..]),
            "the secret part is not stored"
        );
        assert!(row.last_used_at.is_none());

        let listed = app
            .gql_ok(Some(&developer), LIST_API_TOKENS, json!({}))
            .await;
        assert_eq!(
            listed["apiTokens"],
            json!([{ "id": api_token["id"], "prefix": prefix, "lastUsedAt": null }])
        );

        let me = app.gql_ok(Some(&token), ME, json!({})).await;
        assert_eq!(me["me"]["email"], "tokens@example.com");
        let mut last_used_at = Value::Null;
        for _ in 0..30 {
            let listed = app
                .gql_ok(Some(&developer), LIST_API_TOKENS, json!({}))
                .await;
            last_used_at = listed["apiTokens"][0]["lastUsedAt"].clone();
            if !last_used_at.is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(last_used_at.is_string(), "lastUsedAt is kept after a use");
        assert!(find_token_row(&db, &prefix).await.last_used_at.is_some());

        // Another user cannot revoke it.
        let other = app
            .create_user("tokens-other@example.com", "DEVELOPER")
            .await;
        let response = app
            .gql(
                Some(&other),
                "mutation($id: ID!) { revokeApiToken(id: $id) }",
                json!({ "id": api_token["id"] }),
            )
            .await;
        assert!(
            response["data"]["revokeApiToken"] != true,
            "revoked by a stranger: {response}"
        );
        app.gql_ok(Some(&token), ME, json!({})).await;

        let revoked = app
            .gql_ok(
                Some(&developer),
                "mutation($id: ID!) { revokeApiToken(id: $id) }",
                json!({ "id": api_token["id"] }),
            )
            .await;
        assert_eq!(revoked["revokeApiToken"], true);
        assert_eq!(
            app.gql_err_code(Some(&token), ME, json!({})).await,
            "UNAUTHENTICATED",
            "revoked token"
        );
        let listed = app
            .gql_ok(Some(&developer), LIST_API_TOKENS, json!({}))
            .await;
        assert_eq!(
            listed["apiTokens"],
            json!([]),
            "revoked tokens are not listed"
        );
    }
);

db_test!(api_tokens_expire, |db| async move {
    let app = db.start(TestApp::builder()).await;
    let admin = app.admin_token().await;
    let created = app
        .gql_ok(
            Some(&admin),
            CREATE_API_TOKEN,
            json!({ "name": "short", "days": 30 }),
        )
        .await["createApiToken"]
        .clone();
    let token = created["token"].as_str().expect("token").to_owned();
    let expires_at = chrono::DateTime::parse_from_rfc3339(
        created["apiToken"]["expiresAt"]
            .as_str()
            .expect("expiresAt set"),
    )
    .expect("expiresAt is RFC 3339");
    let days =
        (expires_at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!(
        (29.9..=30.1).contains(&days),
        "expiresInDays 30 gives {days} days"
    );
    app.gql_ok(Some(&token), ME, json!({})).await;

    // Move the expiry into the past, as if 30 days went by.
    let prefix = created["apiToken"]["prefix"].as_str().expect("prefix");
    let row = find_token_row(&db, prefix).await;
    let connection = db.connect().await;
    let mut active: api_tokens::ActiveModel = row.into();
    active.expires_at = Set(Some(chrono::Utc::now() - chrono::Duration::minutes(5)));
    active.update(&connection).await.expect("expire the token");
    let _ = connection.close().await;
    assert_eq!(
        app.gql_err_code(Some(&token), ME, json!({})).await,
        "UNAUTHENTICATED",
        "expired API token"
    );
});
