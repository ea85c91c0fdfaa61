//! Input nobody meant to send, each case with the outcome a user sees: the exit code and the
//! message, or the alerts. Nothing panics, and nothing uses unbounded memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;

const VPC: &str = "10.0.0.0/16";
const REJECT: &str =
    "2 111122223333 eni-1 10.0.1.5 10.0.2.9 40000 22 6 1 40 1764195240 1764195300 REJECT OK";
/// The header line of an S3 file in the default format.
const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn file(name: &str, bytes: &[u8]) -> String {
    let path = dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn event(data: &[u8]) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(data);
    format!(r#"{{"awslogs":{{"data":"{data}"}}}}"#).into_bytes()
}

fn document(messages: &[&str]) -> Vec<u8> {
    let events: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| serde_json::json!({"id": i.to_string(), "timestamp": 0, "message": m}))
        .collect();
    serde_json::json!({"messageType": "DATA_MESSAGE", "owner": "111122223333",
        "logGroup": "g", "logStream": "s", "subscriptionFilters": [], "logEvents": events})
    .to_string()
    .into_bytes()
}

/// How standard input is written.
#[derive(Clone, Copy, PartialEq)]
enum Pipe {
    /// In one write.
    Whole,
    /// One byte, then the rest a moment later: the first read of `check` gets one byte.
    Trickle,
}

/// Runs `check` under `/usr/bin/time` when it exists, to read the peak memory (KiB).
fn run(args: &[&str], stdin: Option<&[u8]>) -> (Output, Option<u64>) {
    run_with(args, stdin, Pipe::Whole, &[])
}

/// [`run`], with standard input written as `pipe` says and `env` set.
fn run_with(
    args: &[&str],
    stdin: Option<&[u8]>,
    pipe: Pipe,
    env: &[(&str, &str)],
) -> (Output, Option<u64>) {
    let timed = Path::new("/usr/bin/time").exists();
    let mut cmd = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "peak-kib=%M", env!("CARGO_BIN_EXE_vpc-flow-alert")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_vpc-flow-alert"))
    };
    cmd.env_remove("VPC_CIDRS")
        .env_remove("FLOW_LOG_FORMAT")
        .env_remove("IGNORE_SOURCE_CIDRS")
        .env_remove("MAX_DECODED_BYTES")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    match (stdin, pipe) {
        (Some(bytes), Pipe::Trickle) if bytes.len() > 1 => {
            input.write_all(&bytes[..1]).unwrap();
            input.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            input.write_all(&bytes[1..]).unwrap();
        }
        (Some(bytes), _) => input.write_all(bytes).unwrap(),
        (None, _) => {}
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-kib="))
        .and_then(|v| v.trim().parse().ok());
    (out, peak)
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    pipe: Pipe,
    env: Vec<(&'static str, String)>,
    exit: i32,
    /// Text expected on stderr.
    says: &'static str,
    /// Sources of the alerts expected on stdout (JSON lines).
    alerts: Vec<&'static str>,
}

fn case(name: &'static str, input: Vec<u8>, exit: i32, says: &'static str) -> Case {
    let path = file(name, &input);
    Case {
        name,
        args: vec![
            "check".into(),
            "--vpc-cidr".into(),
            VPC.into(),
            "--output".into(),
            "json".into(),
            path,
        ],
        stdin: None,
        pipe: Pipe::Whole,
        env: vec![],
        exit,
        says,
        alerts: vec![],
    }
}

fn cases() -> Vec<Case> {
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let mut garbage_gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    garbage_gzip.extend_from_slice(&random[..1000]);
    // Gzip members of 1 MiB each, concatenated: about 1 MB of event that inflates to 1 GiB.
    let member = gzip(&vec![b'A'; 1 << 20]);
    let bomb = event(&member.repeat(1024));
    let mut bad_utf8 =
        b"2 111122223333 eni-1 10.0.1.5 10.0.2.9 40000 22 6 1 40 \xff\xfe 1764195300 REJECT OK\n"
            .to_vec();
    bad_utf8.extend_from_slice(REJECT.as_bytes());
    let mut huge = vec![b'9'; 20 << 20];
    huge.push(b'\n');
    huge.extend_from_slice(REJECT.as_bytes());
    let mut cases = vec![
        case("random-bytes", random, 0, "every record is malformed"),
        case("empty", vec![], 0, "0 records, 0 malformed"),
        case(
            "not-an-event.json",
            br#"{"Records":[{"s3":{}}]}"#.to_vec(),
            1,
            "neither a CloudWatch Logs subscription event",
        ),
        case("nested.json", nested, 1, "neither a CloudWatch Logs"),
        case(
            "kinesis-bad-record.json",
            br#"{"Records":[{"eventSource":"aws:kinesis","kinesis":{"sequenceNumber":"4961","data":"aGVsbG8=","approximateArrivalTimestamp":1764237600.5}}]}"#.to_vec(),
            1,
            "Kinesis record 4961: not gzip data",
        ),
        case(
            "flows.parquet",
            b"PAR1\x15\x04\x15\x10".to_vec(),
            1,
            "a Parquet file: flow logs are read as plain text",
        ),
        case(
            "nested-object.json",
            format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes(),
            1,
            "neither a CloudWatch Logs",
        ),
        case(
            "data-not-a-string.json",
            br#"{"awslogs":{"data":{"x":1}}}"#.to_vec(),
            1,
            "invalid JSON: invalid type: map, expected a string",
        ),
        case(
            "gzip-of-garbage.json",
            event(&garbage_gzip),
            1,
            "bad or truncated gzip data",
        ),
        case(
            "gzip-of-garbage.gz",
            garbage_gzip,
            1,
            "bad or truncated gzip data",
        ),
        case(
            "bomb.json",
            bomb,
            1,
            "larger than the limit of 16777216 bytes",
        ),
        case(
            "bad-utf8.log",
            bad_utf8,
            0,
            "2 records, 1 malformed, 1 rejects, 1 findings, 1 source",
        ),
        case(
            "too-large-number.log",
            REJECT
                .replace(" 1 40 ", " 1 99999999999999999999999 ")
                .into_bytes(),
            0,
            "1 records, 1 malformed, 0 rejects",
        ),
        case(
            "port-above-65535.log",
            REJECT.replace(" 22 6 ", " 65536 6 ").into_bytes(),
            0,
            "1 records, 1 malformed",
        ),
        case(
            "20mb-record.log",
            huge,
            0,
            "2 records, 1 malformed, 1 rejects, 1 findings, 1 source",
        ),
        case(
            "malformed-address.log",
            REJECT.replace("10.0.1.5", "10.0.1.500").into_bytes(),
            0,
            "1 records, 1 malformed",
        ),
        case(
            "control-in-document.json",
            document(&["CWL CONTROL MESSAGE"]),
            0,
            "1 records, 1 malformed",
        ),
    ];
    for name in ["bad-utf8.log", "20mb-record.log"] {
        let c = cases.iter_mut().find(|c| c.name == name).expect("case");
        c.alerts = vec!["10.0.1.5"];
    }
    let mut mapped = case(
        "ipv4-mapped.log",
        REJECT.replace("10.0.1.5", "::ffff:10.0.1.5").into_bytes(),
        0,
        "1 findings, 1 source",
    );
    mapped.alerts = vec!["10.0.1.5"];
    cases.push(mapped);
    let mut millis = case(
        "millisecond-times.log",
        REJECT
            .replace("1764195240 1764195300", "1764195240000 1764195300000")
            .into_bytes(),
        0,
        "1 findings, 1 source",
    );
    millis.alerts = vec!["10.0.1.5"];
    cases.push(millis);
    // Two S3 files concatenated, each with its own header and field order: both read.
    let reordered = "srcaddr dstaddr dstport action log-status\n10.0.1.6 10.0.2.2 22 REJECT OK\n";
    let mut concatenated = case(
        "concatenated-s3-files.log",
        format!("{HEADER}\n{REJECT}\n{reordered}").into_bytes(),
        0,
        "2 records, 0 malformed, 2 rejects, 2 findings, 2 sources",
    );
    concatenated.alerts = vec!["10.0.1.5", "10.0.1.6"];
    cases.push(concatenated);
    // A partly uploaded object: the rejects before the cut are reported, then exit 1.
    let whole = gzip(format!("{REJECT}\n").repeat(3000).as_bytes());
    let mut truncated = case(
        "truncated.log.gz",
        whole[..whole.len() * 2 / 3].to_vec(),
        1,
        "cut off after",
    );
    truncated.alerts = vec!["10.0.1.5"];
    cases.push(truncated);
    // A log event without a message is malformed; the batch's other records are read.
    let without_message = br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"1","timestamp":0}"#
        .iter()
        .copied()
        .chain(format!(r#",{{"id":"2","timestamp":0,"message":"{REJECT}"}}]}}"#).into_bytes())
        .collect();
    let mut no_message = case(
        "event-without-message.json",
        without_message,
        0,
        "2 records, 1 malformed, 1 rejects, 1 findings, 1 source",
    );
    no_message.alerts = vec!["10.0.1.5"];
    cases.push(no_message);
    let mut stdin = case("stdin", vec![], 0, "-: 1 records");
    stdin.args.pop();
    stdin.args.push("-".into());
    stdin.stdin = Some(REJECT.as_bytes().to_vec());
    stdin.alerts = vec!["10.0.1.5"];
    cases.push(stdin);
    // `aws s3 cp s3://... - | check -`: the first read of standard input may return one byte
    // of the gzip stream, or only the line break before an event; the input is recognised
    // from enough bytes however the pipe hands them out.
    for (name, input, says) in [
        (
            "stdin-gzip-one-byte-first",
            gzip(format!("{REJECT}\n{REJECT}\n").as_bytes()),
            "-: 2 records, 0 malformed",
        ),
        (
            "stdin-event-after-a-line-break",
            [&b"\n"[..], &event(&gzip(&document(&[REJECT])))].concat(),
            "-: 1 records, 0 malformed",
        ),
    ] {
        let mut trickled = case(name, vec![], 0, says);
        trickled.args.pop();
        trickled.args.push("-".into());
        trickled.stdin = Some(input);
        trickled.pipe = Pipe::Trickle;
        trickled.alerts = vec!["10.0.1.5"];
        cases.push(trickled);
    }
    // A later header naming no usable format (no `action`): its record is counted malformed
    // rather than read with the format before it (it would alert for 10.0.1.7), the other
    // files' rejects are reported, and the input fails.
    let mut refused = case(
        "concatenated-refused-header.log",
        format!(
            "{HEADER}\n{REJECT}\nversion srcaddr dstaddr\n{}\n{reordered}",
            REJECT.replace("10.0.1.5", "10.0.1.7")
        )
        .into_bytes(),
        1,
        "a header line after 1 record does not describe a usable format: the format has no `action` field, so REJECT records cannot be recognised (the records under it are counted malformed, the others are read; the alerts above are from what was read)",
    );
    refused.alerts = vec!["10.0.1.5", "10.0.1.6"];
    cases.push(refused);
    // Zero padding after the last gzip member, as some tools leave it: read as gzip tools do.
    let mut padded = gzip(format!("{REJECT}\n").as_bytes());
    padded.extend_from_slice(&[0; 512]);
    let mut padded = case("zero-padded.log.gz", padded, 0, "1 records, 0 malformed");
    padded.alerts = vec!["10.0.1.5"];
    cases.push(padded);
    // An event pasted from another tool: its base64 wrapped at 76 columns and without its
    // padding.
    let data = (1..8)
        .map(|n| {
            base64::engine::general_purpose::STANDARD.encode(gzip(&document(&vec![REJECT; n])))
        })
        .find(|data| data.ends_with('='))
        .expect("some number of events gives base64 with padding");
    let lines: Vec<&str> = data
        .trim_end_matches('=')
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    let pasted = format!(r#"{{"awslogs":{{"data":"{}"}}}}"#, lines.join("\\n"));
    let mut wrapped = case("wrapped-base64.json", pasted.into_bytes(), 0, "0 malformed");
    wrapped.alerts = vec!["10.0.1.5"];
    cases.push(wrapped);
    let config_case = |name, args: &[&str], exit, says| Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        pipe: Pipe::Whole,
        env: vec![],
        exit,
        says,
        alerts: vec![],
    };
    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/events/internal-reject.json");
    // The limit is on the decoded data: the event's file is smaller than it, its document
    // larger.
    let port_scan = concat!(env!("CARGO_MANIFEST_DIR"), "/events/port-scan.json");
    assert!(std::fs::metadata(port_scan).unwrap().len() < 5000);
    cases.extend([
        config_case(
            "bad-prefix",
            &["check", "--vpc-cidr", "10.0.0.0/40", events],
            2,
            "--vpc-cidr=\"10.0.0.0/40\": `10.0.0.0/40` is not a CIDR block",
        ),
        config_case("no-cidr", &["check", events], 2, "VPC_CIDRS is required"),
        config_case(
            "no-action",
            &[
                "check",
                "--vpc-cidr",
                VPC,
                "--format",
                "${srcaddr} ${dstaddr}",
                events,
            ],
            2,
            "--format=\"${srcaddr} ${dstaddr}\": the format has no `action` field",
        ),
        config_case(
            "decode-limit",
            &[
                "check",
                "--vpc-cidr",
                VPC,
                "--max-decoded-bytes",
                "5000",
                port_scan,
            ],
            1,
            "port-scan.json: decoded data is larger than the limit of 5000 bytes (set MAX_DECODED_BYTES or --max-decoded-bytes",
        ),
        config_case(
            "ignored-ipv4-mapped",
            &[
                "check",
                "--vpc-cidr",
                "::ffff:10.0.0.0/112",
                "--ignore-cidr",
                "::ffff:10.0.1.25",
                events,
            ],
            0,
            "4 rejects, 0 findings, 0 sources",
        ),
        config_case(
            "missing-file",
            &["check", "--vpc-cidr", VPC, "/no/such/file.log"],
            1,
            "/no/such/file.log: cannot open: No such file or directory",
        ),
    ]);
    let mut limit_from_env = config_case(
        "decode-limit-from-env",
        &["check", "--vpc-cidr", VPC, port_scan],
        1,
        "port-scan.json: decoded data is larger than the limit of 5000 bytes",
    );
    limit_from_env.env = vec![("MAX_DECODED_BYTES", "5000".into())];
    cases.push(limit_from_env);
    // A VPC block written IPv4-mapped is folded to IPv4, as records' addresses are.
    let mut mapped = config_case(
        "vpc-ipv4-mapped",
        &[
            "check",
            "--vpc-cidr",
            "::ffff:10.0.0.0/112",
            "--output",
            "json",
            events,
        ],
        0,
        "4 rejects, 2 findings, 1 source",
    );
    mapped.alerts = vec!["10.0.1.25"];
    cases.push(mapped);
    let mut unknown = config_case(
        "unknown-field",
        &[
            "check",
            "--vpc-cidr",
            VPC,
            "--output",
            "json",
            "--format",
            "${srcaddr} ${action} ${quantum-flux}",
            "-",
        ],
        0,
        "field `quantum-flux` is not a known flow log field",
    );
    unknown.stdin = Some(b"10.0.1.5 REJECT 42\n".to_vec());
    unknown.alerts = vec!["10.0.1.5"];
    cases.push(unknown);
    cases
}

#[test]
fn hostile_inputs_get_their_expected_outcome_without_panic_or_unbounded_memory() {
    let mut failures = Vec::new();
    for case in cases() {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (out, peak) = run_with(&args, case.stdin.as_deref(), case.pipe, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let alerts: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["source"].as_str().unwrap_or_default().to_string())
            .collect();
        let mut problems = Vec::new();
        if out.status.code() != Some(case.exit) {
            problems.push(format!(
                "exit {:?}, expected {}",
                out.status.code(),
                case.exit
            ));
        }
        if !stderr.contains(case.says) {
            problems.push(format!("stderr lacks {:?}", case.says));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        if alerts != case.alerts {
            problems.push(format!("alerts {alerts:?}, expected {:?}", case.alerts));
        }
        if let Some(kib) = peak {
            if kib > 100 * 1024 {
                problems.push(format!("peak memory {kib} KiB"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  stderr: {}",
                case.name,
                problems.join("; "),
                stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_millisecond_record_reads_as_the_right_time() {
    let path = file(
        "ms.log",
        REJECT
            .replace("1764195240 1764195300", "1764195240000 1764195300000")
            .as_bytes(),
    );
    let (out, _) = run(&["check", "--vpc-cidr", VPC, &path], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2025-11-26 22:14:00 to 2025-11-26 22:15:00 UTC"),
        "{text}"
    );
}
