//! The `check` command, run as a user runs it: the built binary on files and stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const VPC: &str = "10.0.0.0/16,2600:1f18:4a2b:9e00::/56";

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpc-flow-alert"));
    for var in [
        "VPC_CIDRS",
        "FLOW_LOG_FORMAT",
        "IGNORE_SOURCE_CIDRS",
        "PORT_SCAN_THRESHOLD",
        "HOST_SWEEP_THRESHOLD",
        "MAX_DECODED_BYTES",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn check(args: &[&str]) -> Output {
    bin().arg("check").args(args).output().unwrap()
}

/// `check --vpc-cidr VPC --output json FILE`.
fn check_json(path: &Path) -> Output {
    check(&[
        "--vpc-cidr",
        VPC,
        "--output",
        "json",
        path.to_str().unwrap(),
    ])
}

fn check_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses its arguments exits without reading: the pipe is closed.
    if let Err(e) = child.stdin.take().unwrap().write_all(input) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn alerts(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn an_internal_reject_event_gives_one_alert_with_the_documented_keys() {
    let out = check(&[
        "--vpc-cidr",
        VPC,
        "--output",
        "json",
        "events/internal-reject.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let alerts = alerts(&out);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a["accounts"], serde_json::json!(["210987654321"]));
    assert_eq!(a["source"], "10.0.1.25");
    assert_eq!(a["records"], 2);
    assert_eq!(a["packets"], 5);
    assert_eq!(a["bytes"], 300);
    assert_eq!(
        a["destinations"],
        serde_json::json!({"count": 1, "exact": true})
    );
    assert_eq!(a["ports"], serde_json::json!({"count": 2, "exact": true}));
    assert_eq!(
        a["rejected_at"]["interfaces"],
        serde_json::json!(["eni-0a1b2c3d4e5f60718"])
    );
    assert_eq!(a["first_seen"], "2025-11-26T22:14:00Z");
    assert_eq!(a["last_seen"], "2025-11-26T22:15:00Z");
    assert_eq!(
        (a["type"].as_str(), a["schema_version"].as_u64()),
        (Some("alert"), Some(1))
    );
    assert_eq!(a["severity"], "medium");
    assert_eq!(a["kind"], "probe");
    assert_eq!(a["reason"], "opened");
    assert_eq!(a["log_group"], "/vpc/flow-logs");
    assert!(stderr(&out).contains(
        "events/internal-reject.json: 6 records, 0 malformed, 4 rejects, 2 findings, 1 source"
    ));
}

#[test]
fn port_scans_and_host_sweeps_are_high_and_come_first() {
    let out = check(&[
        "--vpc-cidr",
        VPC,
        "--output",
        "json",
        "events/port-scan.json",
        "events/host-sweep.json",
        "events/internal-reject.json",
    ]);
    let got: Vec<(String, String)> = alerts(&out)
        .iter()
        .map(|a| {
            (
                a["source"].as_str().unwrap().into(),
                a["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Alerts are ordered within an input; inputs are reported in the order given.
    assert_eq!(
        got,
        [
            ("10.0.3.7".to_string(), "high".to_string()),
            ("10.0.4.9".into(), "high".into()),
            ("10.0.1.25".into(), "medium".into()),
        ]
    );
}

#[test]
fn thresholds_from_flags_change_the_severity() {
    let out = check(&[
        "--vpc-cidr",
        VPC,
        "--port-threshold",
        "2",
        "--output",
        "json",
        "events/internal-reject.json",
    ]);
    assert_eq!(alerts(&out)[0]["severity"], "high");
}

#[test]
fn a_custom_format_reads_pkt_srcaddr_as_the_source() {
    let format = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("events/records/custom-v5.log"),
    )
    .unwrap()
    .lines()
    .find_map(|l| l.strip_prefix("# format: ").map(str::to_owned))
    .unwrap();
    let out = bin()
        .env("FLOW_LOG_FORMAT", &format)
        .env("VPC_CIDRS", VPC)
        .args(["check", "--output", "json", "events/custom-v5.json"])
        .output()
        .unwrap();
    let alerts = alerts(&out);
    assert_eq!(alerts.len(), 1, "{}", stderr(&out));
    assert_eq!(alerts[0]["source"], "10.0.6.14");
    assert_eq!(
        alerts[0]["sender"]["instances"],
        serde_json::json!(["i-0123456789abcdef0"])
    );
    assert_eq!(
        alerts[0]["sender"]["vpcs"],
        serde_json::json!(["vpc-0d1e2f3a4b5c6d7e8"])
    );
}

#[test]
fn ipv6_sources_in_two_spellings_are_one_alert() {
    let out = check(&["--vpc-cidr", VPC, "--output", "json", "events/ipv6.json"]);
    let alerts = alerts(&out);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["source"], "2600:1f18:4a2b:9e01::1c");
    assert_eq!(alerts[0]["records"], 2);
}

#[test]
fn internet_rejects_and_control_messages_give_no_alert_and_succeed() {
    let out = check(&[
        "--vpc-cidr",
        VPC,
        "--output",
        "json",
        "events/internet-only.json",
        "events/control-message.json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("events/control-message.json: 0 records"));
}

#[test]
fn an_ignored_source_raises_no_alert() {
    let out = bin()
        .env("IGNORE_SOURCE_CIDRS", "10.0.1.25")
        .args([
            "check",
            "--vpc-cidr",
            VPC,
            "--output",
            "json",
            "events/internal-reject.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(alerts(&out).is_empty());
}

#[test]
fn flags_override_the_environment() {
    let out = bin()
        .env("VPC_CIDRS", "192.168.0.0/16")
        .args([
            "check",
            "--vpc-cidr",
            "10.0.1.0/24",
            "--output",
            "json",
            "events/internal-reject.json",
        ])
        .output()
        .unwrap();
    assert_eq!(alerts(&out).len(), 1);
}

#[test]
fn the_text_report_shows_subject_email_and_the_text_as_delivered() {
    let out = check(&["--vpc-cidr", VPC, "events/port-scan.json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Subject: [HIGH] Port scan from 10.0.3.7: 25 ports on 1 host - 210987654321"),
        "{text}"
    );
    let sms = text
        .lines()
        .find_map(|l| l.strip_prefix("Text:    "))
        .expect("one text per input");
    assert!(
        sms.starts_with("VPC ALERT> HIGH: Port scan from 10.0.3.7"),
        "{sms}"
    );
    assert!(
        sms.len() <= 160,
        "{} characters as delivered: {sms}",
        sms.len()
    );
    assert!(text.contains("WHAT TO DO NEXT"), "{text}");
}

#[test]
fn stdin_is_read_for_a_dash() {
    let event =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("events/port-scan.json")).unwrap();
    let out = check_stdin(&["--vpc-cidr", VPC, "--output", "json", "-"], &event);
    assert_eq!(alerts(&out).len(), 1);
    assert!(stderr(&out).contains("-: 26 records"));
    // Twice would have two readers share one stream: refused, and nothing is read.
    let out = check_stdin(&["--vpc-cidr", VPC, "--jobs", "2", "-", "-"], &event);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard input"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn an_s3_gzip_file_with_a_header_uses_the_header_as_its_format() {
    let mut file = String::from("account-id action log-status srcaddr dstaddr dstport\n");
    for i in 0..2000 {
        file.push_str(&format!(
            "111122223333 REJECT OK 10.0.9.{} 10.0.8.1 {}\n",
            i % 3,
            i / 3 % 12
        ));
        file.push_str("111122223333 ACCEPT OK 10.0.9.1 10.0.8.1 443\n");
    }
    let path = temp_file("flows.log.gz", &gzip(file.as_bytes()));
    let out = check_json(&path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let alerts = alerts(&out);
    assert_eq!(alerts.len(), 3);
    assert!(alerts
        .iter()
        .all(|a| a["ports"]["count"] == 12 && a["severity"] == "high"));
    assert!(
        stderr(&out).contains("4000 records, 0 malformed, 2000 rejects, 2000 findings, 3 sources")
    );
}

#[test]
fn a_ten_thousand_record_event_is_read_whole() {
    let events: Vec<Value> = (0..10_000)
        .map(|i| {
            serde_json::json!({"id": i.to_string(), "timestamp": 0, "message": format!(
                "2 111122223333 eni-1 10.0.{}.{} 10.0.200.1 3000 {} 6 1 40 1700000000 1700000060 REJECT OK",
                i / 250 % 256, i % 250, 1000 + i % 7)})
        })
        .collect();
    let doc = serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "111122223333",
        "logGroup": "g", "logStream": "s", "subscriptionFilters": [], "logEvents": events});
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(gzip(doc.to_string().as_bytes()));
    let path = temp_file(
        "big.json",
        serde_json::json!({"awslogs": {"data": data}})
            .to_string()
            .as_bytes(),
    );
    let out = check_json(&path);
    assert_eq!(alerts(&out).len(), 10_000);
    assert!(stderr(&out)
        .contains("10000 records, 0 malformed, 10000 rejects, 10000 findings, 10000 sources"));
}

#[test]
fn an_input_that_cannot_be_decoded_exits_1_naming_the_file_and_the_cause() {
    let broken = temp_file("broken.json", br#"{"awslogs":{"data":"not base64!"}}"#);
    let out = check(&[
        "--vpc-cidr",
        VPC,
        broken.to_str().unwrap(),
        "events/port-scan.json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("broken.json: `awslogs.data` is not valid base64"),
        "{err}"
    );
    assert!(
        !out.stdout.is_empty(),
        "the other inputs are still reported"
    );

    let out = check(&["--vpc-cidr", VPC, "no/such/file.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no/such/file.json: cannot open"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn configuration_errors_exit_2_naming_the_variable_or_flag() {
    let out = check(&["events/port-scan.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("VPC_CIDRS is required"));

    let out = check(&["--vpc-cidr", "10.0.0.0/33", "events/port-scan.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--vpc-cidr=\"10.0.0.0/33\""),
        "{}",
        stderr(&out)
    );

    let out = bin()
        .env("VPC_CIDRS", VPC)
        .env("FLOW_LOG_FORMAT", "${srcaddr} ${dstaddr}")
        .args(["check", "events/port-scan.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("FLOW_LOG_FORMAT="),
        "{}",
        stderr(&out)
    );

    let out = check(&[
        "--vpc-cidr",
        VPC,
        "--output",
        "yaml",
        "events/port-scan.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_the_options_with_examples() {
    let out = bin().args(["check", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--vpc-cidr",
        "--ignore-cidr",
        "--format",
        "--port-threshold",
        "--host-threshold",
        "--output",
        "Examples:",
    ] {
        assert!(help.contains(needle), "{needle} missing from help");
    }
}

#[test]
fn records_of_the_wrong_format_are_counted_and_a_hint_is_given() {
    let path = temp_file("v5.log", b"5 vpc-1 subnet-1 REJECT OK\n");
    let out = check(&["--vpc-cidr", VPC, path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("1 records, 1 malformed"), "{err}");
    assert!(
        err.contains("every record is malformed: does the flow log use this 14-field format?"),
        "{err}"
    );
}

#[test]
fn every_text_of_the_sample_events_is_one_gsm7_segment_as_delivered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut texts = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") || path.ends_with("local-env.json") {
            continue;
        }
        let out = bin()
            .env("VPC_CIDRS", VPC)
            .env("AWS_REGION", "ap-southeast-2")
            .args(["check", path.to_str().unwrap()])
            .output()
            .unwrap();
        for text in String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("Text:    "))
        {
            texts += 1;
            assert!(text.len() <= 160, "{} characters: {text}", text.len());
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " .,:;()/+-=!?#%&'*<>_@\"".contains(c)),
                "not plain GSM-7: {text}"
            );
        }
    }
    assert!(texts >= 8, "{texts} texts checked");
}

#[test]
fn many_inputs_on_several_threads_give_what_one_thread_gives_in_input_order() {
    let mut files: Vec<String> = std::fs::read_dir("events")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("local-env.json"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    files.sort();
    files.insert(3, "events/missing.json".into());
    // The same order every run, but not the alphabetical one: the sweep's deliveries interleave.
    files.reverse();
    let run = |jobs: &str| {
        let mut args = vec!["--vpc-cidr", VPC, "--output", "json", "--jobs", jobs];
        args.extend(files.iter().map(String::as_str));
        let out = check(&args);
        let mut alerts = alerts(&out);
        // Ids and times come from the clock.
        for a in &mut alerts {
            let a = a.as_object_mut().unwrap();
            for key in ["id", "incident", "detected_at", "opened_at"] {
                a.remove(key);
            }
        }
        (out.status.code(), alerts, stderr(&out))
    };
    let one = run("1");
    assert_eq!(one.0, Some(1), "the missing input fails the run");
    assert!(one.1.len() >= 5, "{}", one.1.len());
    assert!(
        one.2.contains("events/missing.json: cannot open"),
        "{}",
        one.2
    );
    for jobs in ["2", "5"] {
        assert_eq!(run(jobs), one, "--jobs {jobs}");
    }
}

/// Without `--jobs`, `check` reads as many inputs at once as the machine has cores: of two
/// pipes, the second is opened while the first has not given a byte yet (read one at a time,
/// the second would never be opened, and the test would fail after its wait). The output
/// stays in input order.
#[cfg(target_os = "linux")]
#[test]
fn without_jobs_check_reads_inputs_at_once_and_reports_them_in_order() {
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::{Duration, Instant};
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("one core: check reads one input at a time, as it should");
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-jobs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second) = (dir.join("first"), dir.join("second"));
    for pipe in [&first, &second] {
        let made = Command::new("mkfifo").arg(pipe).status().unwrap();
        assert!(made.success(), "mkfifo {}", pipe.display());
    }
    let log = |source: &str| {
        format!(
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
             2 111122223333 eni-1 {source} 10.0.200.1 3000 22 6 1 40 1700000000 1700000060 REJECT OK\n"
        )
    };
    let mut child = bin()
        .args(["check", "--vpc-cidr", VPC, "--output", "json"])
        .args([&first, &second])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Opening a pipe's write end without blocking succeeds only once a reader has it open.
    const O_NONBLOCK: i32 = 0o4000;
    let waited = Instant::now();
    let mut writer = loop {
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(&second);
        match opened {
            Ok(writer) => break writer,
            Err(_) if waited.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the second input was not opened while the first waited: {e}");
            }
        }
    };
    writer.write_all(log("10.0.2.2").as_bytes()).unwrap();
    drop(writer);
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    writer.write_all(log("10.0.1.1").as_bytes()).unwrap();
    drop(writer);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sources: Vec<Value> = alerts(&out).iter().map(|a| a["source"].clone()).collect();
    assert_eq!(sources, ["10.0.1.1", "10.0.2.2"], "{}", stderr(&out));
}

#[test]
fn a_sweep_in_one_kinesis_batch_is_one_high_alert_with_every_target() {
    let out = check_json(Path::new("events/kinesis-sweep.json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["source"], "10.0.4.9");
    assert_eq!(alerts[0]["severity"], "high");
    assert_eq!(alerts[0]["destinations"]["count"], 12);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("12 findings"), "{stderr}");
}
