//! Roles and visibility: ADMIN / DEVELOPER / VIEWER on every query and mutation, private
//! assets invisible to others, admin-only user management, and sharing with grants.

use crate::support::*;

const UPDATE_PROGRAM: &str = "mutation($id: ID!) { updateProgram(id: $id, input: { description: \"changed\" }) { id description } }";
const DELETE_PROGRAM: &str = "mutation($id: ID!) { deleteProgram(id: $id) }";
const CANCEL_RUN: &str = "mutation($id: ID!) { cancelRun(id: $id) { id status } }";
const SHARE: &str = "mutation($asset: ID!, $email: String!, $permission: Permission!) { shareAsset(assetId: $asset, userEmail: $email, permission: $permission) }";
const UNSHARE: &str =
    "mutation($asset: ID!, $email: String!) { unshareAsset(assetId: $asset, userEmail: $email) }";
const VISIBILITY: &str = "query($p: ID!, $e: ID!, $r: ID!) { program(id: $p) { id myPermission } environment(id: $e) { id myPermission } run(id: $r) { id } programs { totalCount edges { node { id } } } environments { totalCount edges { node { id } } } runs { totalCount edges { node { id } } } }";

struct Assets {
    program_id: String,
    environment_id: String,
    run_id: String,
}

/// A program, a READY environment and a QUEUED run owned by the holder of `token`.
async fn make_assets(app: &TestApp, token: &str, name: &str) -> Assets {
    let program_id = create_program_named(app, token, name).await;
    let environment_id = create_ready_environment(app, token, &format!("{name}-env")).await;
    let run = create_run(app, token, &program_id, &environment_id).await;
    Assets {
        program_id,
        environment_id,
        run_id: id_of(&run),
    }
}

async fn visibility(app: &TestApp, token: &str, assets: &Assets) -> Value {
    app.gql_ok(
        Some(token),
        VISIBILITY,
        json!({ "p": assets.program_id, "e": assets.environment_id, "r": assets.run_id }),
    )
    .await
}

async fn share(app: &TestApp, token: &str, asset_id: &str, email: &str, permission: &str) {
    let data = app
        .gql_ok(
            Some(token),
            SHARE,
            json!({ "asset": asset_id, "email": email, "permission": permission }),
        )
        .await;
    assert_eq!(data["shareAsset"], true);
}

fn assert_sees(seen: &Value, assets: &Assets, permission: &str) {
    assert_eq!(seen["program"]["myPermission"], permission, "{seen}");
    assert_eq!(seen["environment"]["myPermission"], permission, "{seen}");
    assert!(
        node_ids(&seen["programs"]).contains(&assets.program_id),
        "{seen}"
    );
    assert!(
        node_ids(&seen["environments"]).contains(&assets.environment_id),
        "{seen}"
    );
}

e2e_test!(
    private_assets_are_invisible_and_untouchable_for_others,
    |app| async move {
        let admin = app.admin_token().await;
        let owner = app.create_user("owner@example.com", "DEVELOPER").await;
        let stranger = app.create_user("stranger@example.com", "DEVELOPER").await;
        let viewer = app.create_user("viewer@example.com", "VIEWER").await;
        let assets = make_assets(&app, &owner, "private").await;
        let strangers_assets = make_assets(&app, &stranger, "strangers").await;

        for token in [&stranger, &viewer] {
            let seen = visibility(&app, token, &assets).await;
            assert!(seen["program"].is_null(), "{seen}");
            assert!(seen["environment"].is_null(), "{seen}");
            assert!(seen["run"].is_null(), "{seen}");
            assert!(!node_ids(&seen["programs"]).contains(&assets.program_id));
            assert!(!node_ids(&seen["environments"]).contains(&assets.environment_id));
            assert!(!node_ids(&seen["runs"]).contains(&assets.run_id));
        }
        let seen = visibility(&app, &viewer, &assets).await;
        for list in ["programs", "environments", "runs"] {
            assert_eq!(
                seen[list]["totalCount"], 0,
                "a viewer without shares sees no {list}"
            );
        }
        let seen = visibility(&app, &stranger, &strangers_assets).await;
        assert_eq!(
            seen["programs"]["totalCount"], 1,
            "a developer sees only its own programs"
        );
        assert_eq!(seen["runs"]["totalCount"], 1);

        let program = json!({ "id": assets.program_id });
        let environment = json!({ "id": assets.environment_id });
        let mut attempts = vec![
            (UPDATE_PROGRAM.to_owned(), program.clone()),
            (DELETE_PROGRAM.to_owned(), program.clone()),
            (CANCEL_RUN.to_owned(), json!({ "id": assets.run_id })),
            (
                SHARE.to_owned(),
                json!({ "asset": assets.program_id, "email": "stranger@example.com", "permission": "ADMIN" }),
            ),
            (
                create_run_mutation(),
                json!({ "input": { "programId": assets.program_id, "environmentId": strangers_assets.environment_id } }),
            ),
            (
                create_run_mutation(),
                json!({ "input": { "programId": strangers_assets.program_id, "environmentId": assets.environment_id } }),
            ),
        ];
        for mutation in ["startEnvironment", "stopEnvironment"] {
            attempts.push((
                format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ id }} }}"),
                environment.clone(),
            ));
        }
        attempts.push((
            "mutation($id: ID!) { deleteEnvironment(id: $id) }".to_owned(),
            environment.clone(),
        ));
        for (query, variables) in &attempts {
            let code = app
                .gql_err_code(Some(&stranger), query, variables.clone())
                .await;
            assert_eq!(code, "NOT_FOUND", "a stranger: {query}");
        }

        // Nothing changed, and the owner and the admin see everything with ADMIN permission.
        for token in [&owner, &admin] {
            let seen = visibility(&app, token, &assets).await;
            assert_sees(&seen, &assets, "ADMIN");
            assert_eq!(seen["run"]["id"], assets.run_id.as_str());
            assert!(node_ids(&seen["runs"]).contains(&assets.run_id));
        }
        let seen = visibility(&app, &admin, &strangers_assets).await;
        assert_eq!(
            seen["programs"]["totalCount"], 2,
            "the admin sees every program"
        );
        assert_eq!(seen["runs"]["totalCount"], 2, "the admin sees every run");
        assert_eq!(
            get_run(&app, &owner, &assets.run_id).await["status"],
            "QUEUED"
        );
        assert!(get_program(&app, &owner, &assets.program_id).await["description"] != "changed");
    }
);

e2e_test!(viewers_cannot_create_anything, |app| async move {
    let owner = app.create_user("dev@example.com", "DEVELOPER").await;
    let viewer = app.create_user("viewer@example.com", "VIEWER").await;
    let me = app
        .gql_ok(
            Some(&viewer),
            "{ me { role } executors { kind } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["role"], "VIEWER");

    let code = app
        .gql_err_code(
            Some(&viewer),
            &create_program_mutation(),
            json!({ "input": program_input("v") }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
    let code = app
        .gql_err_code(
            Some(&viewer),
            &create_environment_mutation(),
            json!({ "input": wasm_environment_input("v") }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    let assets = make_assets(&app, &owner, "shared").await;
    share(
        &app,
        &owner,
        &assets.program_id,
        "viewer@example.com",
        "VIEW",
    )
    .await;
    share(
        &app,
        &owner,
        &assets.environment_id,
        "viewer@example.com",
        "VIEW",
    )
    .await;
    let input = json!({ "input": { "programId": assets.program_id, "environmentId": assets.environment_id } });
    assert_eq!(
        app.gql_err_code(Some(&viewer), &create_run_mutation(), input)
            .await,
        "FORBIDDEN"
    );
    let seen = visibility(&app, &viewer, &assets).await;
    assert_eq!(
        seen["programs"]["totalCount"], 1,
        "still only the shared program"
    );
    assert_eq!(seen["environments"]["totalCount"], 1);
});

e2e_test!(user_management_is_admin_only, |app| async move {
    let admin = app.admin_token().await;
    let developer = app.create_user("dev@example.com", "DEVELOPER").await;
    let viewer = app.create_user("viewer@example.com", "VIEWER").await;
    let second_admin = app.create_user("admin2@example.com", "ADMIN").await;

    for token in [&admin, &second_admin] {
        let users = app
            .gql_ok(Some(token), "{ users { email role } }", json!({}))
            .await;
        let mut emails: Vec<(String, String)> = users["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|user| {
                (
                    user["email"].as_str().unwrap().to_owned(),
                    user["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        emails.sort();
        let expected = [
            ("admin2@example.com", "ADMIN"),
            (ADMIN_EMAIL, "ADMIN"),
            ("dev@example.com", "DEVELOPER"),
            ("viewer@example.com", "VIEWER"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(e, r)| (e.to_string(), r.to_string()))
            .collect();
        assert_eq!(emails, expected);
    }
    let create = "mutation($email: String!) { createUser(email: $email, password: \"password-123\", role: VIEWER) { id } }";
    for token in [&developer, &viewer] {
        assert_eq!(
            app.gql_err_code(Some(token), "{ users { email } }", json!({}))
                .await,
            "FORBIDDEN"
        );
        let code = app
            .gql_err_code(Some(token), create, json!({ "email": "new@example.com" }))
            .await;
        assert_eq!(code, "FORBIDDEN");
    }
    let code = app
        .gql_err_code(Some(&admin), create, json!({ "email": "dev@example.com" }))
        .await;
    assert_eq!(code, "CONFLICT", "duplicate email");
    let users = app
        .gql_ok(Some(&admin), "{ users { email } }", json!({}))
        .await;
    assert_eq!(
        users["users"].as_array().map(Vec::len),
        Some(4),
        "no user was added by the refused calls"
    );
});

e2e_test!(
    sharing_grants_visibility_and_permissions,
    |app| async move {
        let admin = app.admin_token().await;
        let owner = app.create_user("owner@example.com", "DEVELOPER").await;
        let partner = app.create_user("partner@example.com", "DEVELOPER").await;
        let viewer = app.create_user("viewer@example.com", "VIEWER").await;
        let assets = make_assets(&app, &owner, "shared").await;

        share(
            &app,
            &owner,
            &assets.program_id,
            "viewer@example.com",
            "VIEW",
        )
        .await;
        share(
            &app,
            &owner,
            &assets.environment_id,
            "viewer@example.com",
            "VIEW",
        )
        .await;
        let seen = visibility(&app, &viewer, &assets).await;
        assert_sees(&seen, &assets, "VIEW");
        let program = json!({ "id": assets.program_id });
        assert_eq!(
            app.gql_err_code(Some(&viewer), UPDATE_PROGRAM, program.clone())
                .await,
            "FORBIDDEN"
        );
        assert_eq!(
            app.gql_err_code(Some(&viewer), DELETE_PROGRAM, program.clone())
                .await,
            "FORBIDDEN"
        );
        let start = "mutation($id: ID!) { startEnvironment(id: $id) { id } }";
        assert_eq!(
            app.gql_err_code(Some(&viewer), start, json!({ "id": assets.environment_id }))
                .await,
            "FORBIDDEN"
        );
        let reshare = json!({ "asset": assets.program_id, "email": "partner@example.com", "permission": "VIEW" });
        assert_eq!(
            app.gql_err_code(Some(&viewer), SHARE, reshare).await,
            "FORBIDDEN",
            "sharing needs ADMIN"
        );

        // EXECUTE on both lets a developer run the owner's program.
        share(
            &app,
            &owner,
            &assets.program_id,
            "partner@example.com",
            "EXECUTE",
        )
        .await;
        share(
            &app,
            &owner,
            &assets.environment_id,
            "partner@example.com",
            "EXECUTE",
        )
        .await;
        let seen = visibility(&app, &partner, &assets).await;
        assert_sees(&seen, &assets, "EXECUTE");
        let run = create_run(&app, &partner, &assets.program_id, &assets.environment_id).await;
        assert_eq!(run["owner"]["email"], "partner@example.com");
        assert_eq!(
            app.gql_err_code(Some(&partner), UPDATE_PROGRAM, program.clone())
                .await,
            "FORBIDDEN"
        );

        // A new grant replaces the old one.
        share(
            &app,
            &owner,
            &assets.program_id,
            "partner@example.com",
            "EDIT",
        )
        .await;
        let updated = app
            .gql_ok(Some(&partner), UPDATE_PROGRAM, program.clone())
            .await;
        assert_eq!(updated["updateProgram"]["description"], "changed");
        share(
            &app,
            &owner,
            &assets.program_id,
            "partner@example.com",
            "VIEW",
        )
        .await;
        assert_eq!(
            get_program(&app, &partner, &assets.program_id).await["myPermission"],
            "VIEW"
        );

        let unknown = json!({ "asset": assets.program_id, "email": "nobody@example.com", "permission": "VIEW" });
        assert_eq!(
            app.gql_err_code(Some(&owner), SHARE, unknown).await,
            "NOT_FOUND"
        );

        let data = app
            .gql_ok(
                Some(&owner),
                UNSHARE,
                json!({ "asset": assets.program_id, "email": "viewer@example.com" }),
            )
            .await;
        assert_eq!(data["unshareAsset"], true);
        let seen = visibility(&app, &viewer, &assets).await;
        assert!(seen["program"].is_null(), "unshared: {seen}");
        assert!(!node_ids(&seen["programs"]).contains(&assets.program_id));
        assert_eq!(
            seen["environment"]["myPermission"], "VIEW",
            "the environment is still shared"
        );

        // The admin may share anything; the owner keeps ADMIN.
        share(
            &app,
            &admin,
            &assets.program_id,
            "viewer@example.com",
            "VIEW",
        )
        .await;
        assert_eq!(
            get_program(&app, &viewer, &assets.program_id).await["myPermission"],
            "VIEW"
        );
        assert_eq!(
            get_program(&app, &owner, &assets.program_id).await["myPermission"],
            "ADMIN"
        );
    }
);

db_test!(
    shares_hold_across_a_restart_and_changes_apply_at_once,
    |db| async move {
        let mut app = db.start(TestApp::builder()).await;
        let owner = app.create_user("dev@example.com", "DEVELOPER").await;
        let partner = app.create_user("partner@example.com", "DEVELOPER").await;
        let outsider = app.create_user("outsider@example.com", "DEVELOPER").await;
        let assets = make_assets(&app, &owner, "kept").await;
        share(
            &app,
            &owner,
            &assets.program_id,
            "partner@example.com",
            "EDIT",
        )
        .await;
        // Asked once before the restart, so any answer kept in memory is warm.
        assert_eq!(
            get_program(&app, &partner, &assets.program_id).await["myPermission"],
            "EDIT"
        );
        app.stop().await;

        // A new server reads the grants the database holds.
        let app = db.start(TestApp::builder()).await;
        let partner = app.login("partner@example.com", USER_PASSWORD).await;
        let outsider_again = app.login("outsider@example.com", USER_PASSWORD).await;
        let owner = app.login("dev@example.com", USER_PASSWORD).await;
        drop(outsider);
        assert_eq!(
            get_program(&app, &partner, &assets.program_id).await["myPermission"],
            "EDIT"
        );
        assert!(visibility(&app, &outsider_again, &assets).await["program"].is_null());
        assert_eq!(
            get_program(&app, &owner, &assets.program_id).await["myPermission"],
            "ADMIN"
        );

        // A change applies to the very next decision, both ways.
        share(
            &app,
            &owner,
            &assets.program_id,
            "outsider@example.com",
            "VIEW",
        )
        .await;
        assert_eq!(
            visibility(&app, &outsider_again, &assets).await["program"]["myPermission"],
            "VIEW"
        );
        share(
            &app,
            &owner,
            &assets.program_id,
            "partner@example.com",
            "VIEW",
        )
        .await;
        assert_eq!(
            get_program(&app, &partner, &assets.program_id).await["myPermission"],
            "VIEW"
        );
        let data = app
            .gql_ok(
                Some(&owner),
                UNSHARE,
                json!({ "asset": assets.program_id, "email": "partner@example.com" }),
            )
            .await;
        assert_eq!(data["unshareAsset"], true);
        assert!(visibility(&app, &partner, &assets).await["program"].is_null());
        // A program created after the start is its owner's at once.
        let fresh = create_program_named(&app, &owner, "fresh").await;
        assert_eq!(
            get_program(&app, &owner, &fresh).await["myPermission"],
            "ADMIN"
        );
    }
);
