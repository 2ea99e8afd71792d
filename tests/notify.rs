//! Native notifications: a failed run delivers exactly one message to every configured channel,
//! each in its own format, naming the project, env, operation and error and what is still safe;
//! healthchecks gets start and fail pings with one run id. A healthy run sends the success ping
//! only. A channel that is down or hangs changes neither the exit code nor, past its timeout,
//! how long the run takes (an alert command that hangs is stopped too). Real parts: aiosmtpd (pinned) and a loopback HTTP receiver.

mod support;

use std::time::Instant;

use support::{Recorder, Scratch, cluster, db_name, maildir_messages, smtp_server};

fn header<'a>(r: &'a support::Received, name: &str) -> &'a str {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
}

#[test]
fn a_failed_run_sends_one_message_per_channel_and_a_good_one_only_the_success_ping() {
    let c = cluster();
    let db = db_name("notify");
    c.create_sample_db(&db, 5);
    let rec = Recorder::start(false);
    let tmp = tempfile::tempdir().unwrap();
    let (smtp_port, maildir) = smtp_server(tmp.path());
    let token = tmp.path().join("telegram.token");
    std::fs::write(&token, "123:SECRET\n").unwrap();
    let b = &rec.base;
    let alerts = format!(
        "alerts:\n  slack: {b}/slack\n  discord: [{b}/discord]\n  teams: {b}/teams\n  ntfy: {b}/ntfy/pgtier\n  telegram: {{bot_token_file: {}, chat_id: \"42\", api_url: {b}/tg}}\n  email: {{smtp: \"127.0.0.1:{smtp_port}\", tls: none, from: pgtier@db1.example, to: [ops@example.com]}}\n  healthchecks: {b}/hc/check-1\n  timeout_seconds: 3\n",
        token.display()
    );
    let projects = |database: &str| format!("shop:\n{}", c.database_block(&[("production", database)]));
    let nas = tempfile::tempdir().unwrap();
    let s = Scratch::new(&projects(&db), &format!("{alerts}remote:\n  url: file://{}\n", nas.path().display()));
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 3, locations: [local, remote]}\n");
    s.ok(&["config", "check"]);

    // A good night: the start and success pings only.
    s.ok(&["-q", "run", "--now", "2025-01-06T02:00:00Z"]);
    let hc = rec.to("/hc/");
    assert_eq!(hc.len(), 2, "{hc:?}");
    assert!(hc[0].target.starts_with("/hc/check-1/start?rid="), "{hc:?}");
    let rid = hc[0].target.split("rid=").nth(1).unwrap().to_string();
    assert_eq!(hc[1].target, format!("/hc/check-1?rid={rid}"), "the success ping carries the same run id");
    assert_eq!(rec.got.lock().unwrap().len(), 2, "a healthy run sends no message: {:?}", rec.got.lock().unwrap());
    assert!(maildir_messages(&maildir).is_empty());
    rec.clear();

    // doctor --send-test-alert reaches every channel.
    let out = s.ok(&["doctor", "--send-test-alert"]);
    assert!(out.contains("test alert delivered to the slack, discord, teams, ntfy, telegram, email"), "{out}");
    for path in ["/slack", "/discord", "/teams", "/ntfy/pgtier", "/tg/bot123:SECRET/sendMessage"] {
        assert_eq!(rec.to(path).len(), 1, "{path}: {:?}", rec.got.lock().unwrap());
    }
    let mails = maildir_messages(&maildir);
    assert!(mails.len() == 1 && mails[0].contains("test alert from doctor"), "{mails:?}");
    std::fs::remove_file(std::fs::read_dir(maildir.join("new")).unwrap().next().unwrap().unwrap().path()).unwrap();
    rec.clear();

    // A failed night: the database is gone.
    s.write("projects.yml", &projects("no_such_database_here"));
    let out = s.run(&["-q", "run", "--now", "2025-01-07T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // The backup failed; the globals are not tried against a database that is not
    // there, so the one message names one failure and gives the error once.
    let subject_start = "pgtier: FAILED backup shop/production on ";
    let one = |path: &str| {
        let got = rec.to(path);
        assert_eq!(got.len(), 1, "exactly one message to {path}: {got:?}");
        got.into_iter().next().unwrap()
    };
    let slack: serde_json::Value = serde_json::from_str(&one("/slack").body).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with(subject_start), "{text}");
    assert!(text.contains("no_such_database_here"), "the error is in the message: {text}");
    assert!(
        text.contains("Still safe:")
            && text.contains("db_20250106_020000, taken 24 h ago")
            && text.contains("copies here, default (daily)"),
        "the newest good backup is named: {text}"
    );
    assert!(text.contains("pgtier doctor shop production"), "the next command is named: {text}");
    let discord: serde_json::Value = serde_json::from_str(&one("/discord").body).unwrap();
    assert!(discord["content"].as_str().unwrap().trim_start_matches("```\n").starts_with(subject_start), "{discord}");
    let teams: serde_json::Value = serde_json::from_str(&one("/teams").body).unwrap();
    assert_eq!(teams["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive", "{teams}");
    assert!(teams["attachments"][0]["content"]["body"][0]["inlines"][0]["text"].as_str().unwrap().starts_with(subject_start), "{teams}");
    let ntfy = one("/ntfy/pgtier");
    assert!(header(&ntfy, "title").starts_with(subject_start) && header(&ntfy, "priority") == "high", "{ntfy:?}");
    assert!(ntfy.body.contains("FAILED backup shop/production"), "{ntfy:?}");
    let tg = one("/tg/bot123:SECRET/sendMessage");
    let tgv: serde_json::Value = serde_json::from_str(&tg.body).unwrap();
    assert_eq!(tgv["chat_id"], "42");
    assert!(tgv["text"].as_str().unwrap().starts_with(subject_start), "{tgv}");
    let mails = maildir_messages(&maildir);
    assert_eq!(mails.len(), 1, "exactly one email: {mails:?}");
    assert!(mails[0].contains(&format!("Subject: {subject_start}")) && mails[0].contains("To: ops@example.com"), "{}", mails[0]);
    assert!(mails[0].contains("no_such_database_here"), "{}", mails[0]);
    let hc = rec.to("/hc/");
    assert_eq!(hc.len(), 2, "{hc:?}");
    let rid = hc[0].target.split("rid=").nth(1).unwrap().to_string();
    assert_eq!(hc[1].target, format!("/hc/check-1/fail?rid={rid}"), "{hc:?}");
    assert!(hc[1].body.contains("FAILED backup shop/production"), "{hc:?}");
    // The token never reaches the output.
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("SECRET"), "{all}");
}

#[test]
fn a_channel_that_is_down_or_hangs_changes_neither_the_exit_code_nor_the_run_past_its_timeout() {
    let c = cluster();
    let rec = Recorder::start(false);
    let hang = Recorder::start(true);
    let down = format!("http://127.0.0.1:{}/down", support::free_port());
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", "no_such_database_either")])),
        &format!("alerts:\n  slack: [{}/stuck, {down}, {}/slack]\n  command: sleep 30\n  timeout_seconds: 2\n", hang.base, rec.base),
    );
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 3, locations: [local]}\n");
    let t = Instant::now();
    // Without -q: delivery failures are warnings, which -q keeps off stderr.
    let out = s.run(&["run", "--now", "2025-01-07T02:00:00Z"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "the run failed for its own reason, and says so");
    assert!(took.as_secs_f64() < 12.0, "a hanging channel held the run for {took:?} (timeout 2 s)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no answer within 2 s") && err.contains("could not deliver"), "the failed deliveries are logged: {err}");
    assert!(err.contains("sleep 30: still running after 2 s; stopped"), "an alert command that hangs is stopped: {err}");
    assert_eq!(rec.to("/slack").len(), 1, "the channel that works still gets its message");
}

#[test]
fn names_from_outside_are_shown_as_text_never_as_mentions_or_links() {
    let c = cluster();
    let rec = Recorder::start(false);
    let b = &rec.base;
    // A database name (it appears in the error) written to be a mass mention and a disguised link.
    let hostile = "<!channel> <https://e.x|y> @everyone [d](https://e.x)";
    let s = Scratch::new(
        &format!(
            "shop:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: postgres\n    databases:\n      production: \"{hostile}\"\n",
            c.port
        ),
        &format!("alerts:\n  slack: {b}/slack\n  discord: {b}/discord\n  teams: {b}/teams\n  timeout_seconds: 3\n"),
    );
    let out = s.run(&["run", "--now", "2025-01-06T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let one = |p: &str| rec.to(p).pop().unwrap_or_else(|| panic!("nothing sent to {p}"));
    let slack: serde_json::Value = serde_json::from_str(&one("/slack").body).unwrap();
    let text = slack["text"].as_str().unwrap();
    assert!(text.contains("&lt;!channel&gt;") && !text.contains("<!channel>") && !text.contains("<https://"), "{text}");
    assert!(!text.contains("@everyone"), "{text}");
    let discord: serde_json::Value = serde_json::from_str(&one("/discord").body).unwrap();
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]), "{discord}");
    let content = discord["content"].as_str().unwrap();
    assert!(content.starts_with("```\n") && content.ends_with("\n```") && content.matches("```").count() == 2, "{content}");
    let teams = one("/teams").body;
    assert!(!teams.contains("\"type\":\"TextBlock\"") && teams.contains("TextRun"), "Teams reads no Markdown in a text run: {teams}");
}
