//! A run's log through the API: 20,000 lines through `runLogs` in order and resumed after a
//! `seq`, the same answers whatever the shape of the subscription, and the log cap.

use std::time::Duration;

use crate::support::wasm::*;
use crate::support::*;

const RUN_LOGS: &str = "subscription($id: ID!, $after: Int) { runLogs(runId: $id, afterSeq: $after) { seq stream line } }";

e2e_test!(
    twenty_thousand_lines_stream_in_order_and_resume_after_a_seq,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "lines", &lines_program(5)).await;
        let environment =
            wasm_environment(&app, &token, json!({ "maxLogBytes": 10_000_000 })).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!([])).await);

        // Subscribe while the run is writing.
        let mut ws = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &token).await;
        ws.subscribe("logs", RUN_LOGS, json!({ "id": id })).await;
        let mut seqs = Vec::new();
        let mut n_stdout = 0;
        loop {
            match ws.next_event().await {
                WsEvent::Next(payload) => {
                    let line = &payload["data"]["runLogs"];
                    seqs.push(line["seq"].as_i64().unwrap());
                    if line["stream"] == "STDOUT" {
                        assert_eq!(line["line"], "0123456789abcde");
                        n_stdout += 1;
                    }
                }
                WsEvent::Complete => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(n_stdout, 20_000, "every line arrives");
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "in order, no gap, no duplicate"
        );
        assert_eq!(run(&app, &token, &id).await["status"], "SUCCEEDED");

        // Resume after a seq: only later lines, then completion.
        ws.subscribe("resume", RUN_LOGS, json!({ "id": id, "after": 15_000 }))
            .await;
        let mut resumed = Vec::new();
        loop {
            match ws.next_event().await {
                WsEvent::Next(payload) => {
                    resumed.push(payload["data"]["runLogs"]["seq"].as_i64().unwrap())
                }
                WsEvent::Complete => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(resumed, (15_001..=seqs.len() as i64).collect::<Vec<_>>());

        // Run.logs pages stored lines.
        let page = logs(&app, &token, &id, 100, 50).await;
        assert_eq!(page.len(), 50);
        assert_eq!(page[0]["seq"], 101);
        assert_eq!(page[49]["seq"], 150);
    }
);

/// Every result (`Next` payload) of one subscription, until it completes.
async fn all_results(ws: &mut WsClient, query: &str, variables: Value) -> Vec<Value> {
    ws.subscribe("s", query, variables).await;
    let mut results = Vec::new();
    loop {
        match ws.next_event().await {
            WsEvent::Next(payload) => results.push(payload),
            WsEvent::Complete => return results,
            other => panic!("unexpected {other:?}"),
        }
    }
}

e2e_test!(
    run_logs_answers_alike_whatever_the_shape_of_the_query,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "lines", &lines_program(1)).await;
        let environment = wasm_environment(&app, &token, json!({})).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!([])).await);
        wait_status(&app, &token, &id, "SUCCEEDED", Duration::from_secs(30)).await;
        let stored = app
            .gql_ok(
                Some(&token),
                "query($id: ID!) { run(id: $id) { logs(first: 10000) { seq stream line timestamp __typename } } }",
                json!({ "id": id }),
            )
            .await["run"]["logs"]
            .as_array()
            .unwrap()
            .clone();
        assert!(stored.len() > 4000, "{} lines", stored.len());
        let mut ws = WsClient::connect_with_token(&app, WsProtocol::TransportWs, &token).await;

        // A plain selection, and the same through a fragment: the same
        // results as the stored lines, one per line.
        let plain = all_results(
            &mut ws,
            "subscription($id: ID!) { runLogs(runId: $id) { seq stream line timestamp __typename } }",
            json!({ "id": id }),
        )
        .await;
        let fragment = all_results(
            &mut ws,
            "subscription($id: ID!) { runLogs(runId: $id) { ...L } } fragment L on LogLine { seq stream line timestamp __typename }",
            json!({ "id": id }),
        )
        .await;
        let expected: Vec<Value> = stored
            .iter()
            .map(|line| json!({ "data": { "runLogs": line } }))
            .collect();
        assert_eq!(plain, expected);
        assert_eq!(fragment, expected);

        // Aliases, a literal afterSeq and a named operation.
        let after = stored.len() as i64 - 5;
        let aliased = all_results(
            &mut ws,
            &format!(
                r#"subscription Tail {{ tail: runLogs(runId: "{id}", afterSeq: {after}) {{ n: seq text: line }} }}"#
            ),
            json!({}),
        )
        .await;
        let expected: Vec<Value> = stored[stored.len() - 5..]
            .iter()
            .map(|line| json!({ "data": { "tail": { "n": line["seq"], "text": line["line"] } } }))
            .collect();
        assert_eq!(aliased, expected);

        // Errors are the schema's, whatever the shape.
        for query in [
            "subscription($id: ID!) { runLogs(runId: $id) { seq } }",
            "subscription($id: ID!) { runLogs(runId: $id) { ...L } } fragment L on LogLine { seq }",
        ] {
            ws.subscribe(
                "e",
                query,
                json!({ "id": uuid::Uuid::now_v7().to_string() }),
            )
            .await;
            let event = ws.next_event().await;
            let payload = match &event {
                WsEvent::Next(payload) => payload["errors"].clone(),
                WsEvent::Error(payload) => payload.clone(),
                other => panic!("unexpected {other:?}"),
            };
            let errors = payload.as_array().unwrap_or_else(|| panic!("{event:?}"));
            assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{event:?}");
            if matches!(event, WsEvent::Next(_)) {
                ws.expect_complete().await;
            }
        }
    }
);

e2e_test!(
    output_past_the_log_cap_is_dropped_while_the_run_goes_on,
    executing(),
    |app| async move {
        let token = app.create_user("dev@example.com", "DEVELOPER").await;
        let program = wasm_program(&app, &token, "lines", &lines_program(5)).await;
        let environment = wasm_environment(&app, &token, json!({ "maxLogBytes": 10_000 })).await;
        let id = id_of(&start_run(&app, &token, &program, &environment, json!([])).await);
        let done = wait_status(
            &app,
            &token,
            &id,
            "SUCCEEDED|FAILED",
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        let lines = logs(&app, &token, &id, 0, 10_000).await;
        let stdout = lines_of(&lines, "STDOUT");
        let kept: usize = stdout.iter().map(|l| l.len() + 1).sum();
        assert!(kept <= 10_000 && kept > 9_000, "{kept} bytes kept");
        let system = lines_of(&lines, "SYSTEM");
        assert_eq!(
            system.iter().filter(|l| l.contains("truncated")).count(),
            1,
            "{system:?}"
        );
        assert_eq!(
            system.last().map(String::as_str),
            Some("exited with code 0"),
            "the run went on to its end"
        );
    }
);
