//! The command line: `vpc-flow-alert check FILE...` shows what the Lambda would send.
//!
//! Arguments are parsed in two steps, as ripgrep does: clap reads the raw flags, then they are
//! merged over the environment and validated into one [`Config`]. Exit codes: 0 when every
//! input was read (alerts or not), 1 when an input cannot be read or decoded, 2 for usage and
//! configuration errors.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::thread;

use clap::{Args, Parser, Subcommand, ValueEnum};

use std::time::{Duration, Instant};

use crate::aws::ec2::SenderLookup;
use crate::aws::publish::{publish_all, RetryPolicy, SnsSink};
use crate::aws::s3::{BlockingS3, Wanted};
use crate::aws::{ec2_client, sdk_config};
use crate::config::{
    env_setting, parse_count, ConfigError, RawConfig, RawSetting, DEFAULT_MAX_DECODED_BYTES,
    ENV_FLOW_LOG_FORMAT,
};
use crate::detect::alert::{for_each_alert, Alert};
use crate::detect::claims::{Brief, Claims};
use crate::detect::incident::IncidentMemory;
use crate::flow::format::{FlowFormat, DEFAULT_FORMAT};
use crate::function::unix_now;
use crate::function::{parse_topic_arn, DEFAULT_MAX_ALERTS, ENV_MAX_ALERTS, ENV_SNS_TOPIC_ARN};
use crate::input::decode::DecodeError;
use crate::input::events::ObjectRef;
use crate::input::files::{scan_in_order, scan_path};
use crate::input::scan::Report;
use crate::present::message::{messages_of, page_line, OutgoingMessage, DIGEST_LISTED};
use crate::present::render;

const ABOUT: &str = "Alerts when a host inside your VPC sends traffic that the network rejects.

Runs as an AWS Lambda function fed by a CloudWatch Logs subscription (start it without a \
subcommand, under the Lambda runtime), or locally with `check` to see exactly what the \
function would send.";

#[derive(Debug, Parser)]
#[command(name = "vpc-flow-alert", version, about = ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read flow log inputs and print the alerts the Lambda would send.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Print the CloudWatch Logs subscription filter pattern that passes only the REJECT
    /// records of a flow log format (the deployment template's FilterPattern parameter).
    #[command(
        after_help = "Example:\n  vpc-flow-alert filter-pattern --format '${srcaddr} ${dstaddr} ${action} ${log-status}'"
    )]
    FilterPattern {
        /// The flow log format. Overrides FLOW_LOG_FORMAT; default: the 14 version-2 fields.
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },
}

const CHECK_EXAMPLES: &str = "\
Inputs are recognised from their content: a Lambda event (a CloudWatch Logs subscription \
event {\"awslogs\":{\"data\":...}}, a Kinesis batch from a CloudWatch Logs destination, or an \
S3 object-created notification, direct, in SQS messages or from EventBridge, whose objects are \
read from S3), a decoded CloudWatch Logs document, raw flow log records as delivered to S3 \
(plain or .gz, with or without a header line), or s3://BUCKET/KEY. S3 is read with the usual \
AWS credentials and region. A per-input summary goes to stderr.

Exit status: 0 when every input was read, alerts or not; 1 when an input cannot be read or \
decoded; 2 for usage and configuration errors.

Examples:
  vpc-flow-alert check --vpc-cidr 10.0.0.0/16 events/internal-reject.json
  VPC_CIDRS=10.0.0.0/16,2600:1f18:1234::/56 \\
      vpc-flow-alert check --output json flows.log.gz
  zcat flows.log.gz | vpc-flow-alert check --vpc-cidr 10.0.0.0/16 \\
      --ignore-cidr 10.0.5.9 -
  vpc-flow-alert check --vpc-cidr 10.0.0.0/16 \\
      --format '${srcaddr} ${pkt-srcaddr} ${dstaddr} ${dstport} ${action}' \\
      file.log
  vpc-flow-alert check --vpc-cidr 10.0.0.0/16 \\
      s3://my-flow-logs/AWSLogs/111122223333/vpcflowlogs/us-east-1/2026/11/27/file.log.gz
  vpc-flow-alert check --vpc-cidr 10.0.0.0/16 \\
      --port-threshold 20 --host-threshold 5 events/port-scan.json
  vpc-flow-alert check --vpc-cidr 10.0.0.0/16 \\
      --max-decoded-bytes 33554432 big-event.json
  vpc-flow-alert check --vpc-cidr 10.0.0.0/16 --publish \\
      --topic-arn arn:aws:sns:us-east-1:123456789012:alerts events/port-scan.json";

#[derive(Debug, Args)]
struct CheckArgs {
    /// A CIDR block of the VPC; repeat it, or separate blocks with commas, for several
    /// (IPv4 and IPv6). Overrides VPC_CIDRS. Example: --vpc-cidr 10.0.0.0/16
    #[arg(long = "vpc-cidr", value_name = "CIDR")]
    vpc_cidrs: Vec<String>,

    /// A source to ignore even though it is inside the VPC (a known scanner, say); repeat it
    /// for several. A bare address means that host. Overrides IGNORE_SOURCE_CIDRS.
    /// Example: --ignore-cidr 10.0.5.9
    #[arg(long = "ignore-cidr", value_name = "CIDR")]
    ignore_cidrs: Vec<String>,

    /// The flow log's field order, as its AWS LogFormat or as plain names (hyphens or
    /// underscores). Overrides FLOW_LOG_FORMAT; default: the 14 version-2 fields. An S3 file's
    /// header line overrides it for that file.
    /// Example: --format '${srcaddr} ${dstaddr} ${dstport} ${action}'
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,

    /// Distinct destination ports from one source that make the alert high severity (a port
    /// scan). Overrides PORT_SCAN_THRESHOLD; default 10.
    #[arg(long = "port-threshold", value_name = "N")]
    port_threshold: Option<String>,

    /// Distinct destination hosts from one source that make the alert high severity (a host
    /// sweep). Overrides HOST_SWEEP_THRESHOLD; default 10.
    #[arg(long = "host-threshold", value_name = "N")]
    host_threshold: Option<String>,

    /// The most bytes one JSON input may decode (inflate) to; larger inputs fail instead of
    /// exhausting memory. Overrides MAX_DECODED_BYTES; default 16777216 (16 MiB).
    #[arg(long = "max-decoded-bytes", value_name = "BYTES")]
    max_decoded_bytes: Option<String>,

    /// `text`: a report for a person (subject, text message and email of each alert).
    /// `json`: one alert object per line on stdout, and nothing else there.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,

    /// Treat each input alone, as if no other input had been seen: one incident store per
    /// input instead of one for all of them in the order given.
    #[arg(long = "per-input")]
    per_input: bool,

    /// Also publish the alerts to the SNS topic SNS_TOPIC_ARN (or --topic-arn), as the Lambda
    /// would (at most MAX_ALERTS_PER_INVOCATION messages per input, then a digest), to test the
    /// topic's subscriptions end to end. Uses the usual AWS credentials and region.
    #[arg(long)]
    publish: bool,

    /// Name each sender by looking its address up in EC2 (its instance, Name tag, interface
    /// and security groups), as the deployed function does with ENRICH=true. Uses the usual AWS
    /// credentials and region (ec2:DescribeNetworkInterfaces, ec2:DescribeInstances).
    #[arg(long)]
    enrich: bool,

    /// The topic for --publish. Overrides SNS_TOPIC_ARN.
    #[arg(long = "topic-arn", value_name = "ARN", requires = "publish")]
    topic_arn: Option<String>,

    /// Read this many inputs at once (default: one per core). The output is the same as with
    /// one: inputs are reported, and go through the incident store, in the order given.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Files to read; `-` reads standard input (once), `s3://BUCKET/KEY` an object in S3.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Runs the command line with the process's arguments and environment.
pub fn main() -> ExitCode {
    run(std::env::args_os(), |name| std::env::var(name).ok())
}

/// Runs the command line; `env` reads environment variables (a map in tests).
pub fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    env: impl Fn(&str) -> Option<String>,
) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Some(Command::Check(args)) => check(args, env),
        Some(Command::FilterPattern { format }) => filter_pattern(format, &env),
        None if env("AWS_LAMBDA_RUNTIME_API").is_some() => run_function(),
        None => {
            eprintln!("vpc-flow-alert: no command given; try `vpc-flow-alert check --help` (without a command, the binary runs as a Lambda function and needs AWS_LAMBDA_RUNTIME_API)");
            ExitCode::from(2)
        }
    }
}

fn filter_pattern(format: Option<String>, env: &impl Fn(&str) -> Option<String>) -> ExitCode {
    let setting = match format {
        Some(f) => Some(RawSetting::new("--format", f)),
        None => env_setting(env, ENV_FLOW_LOG_FORMAT),
    };
    let parsed = match &setting {
        Some(s) => {
            FlowFormat::parse(&s.value).map_err(|e| format!("{}={:?}: {e}", s.origin, s.value))
        }
        None => Ok(FlowFormat::default_v2()),
    };
    match parsed {
        Ok(format) => {
            println!("{}", format.filter_pattern());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("vpc-flow-alert: configuration error: {err}");
            ExitCode::from(2)
        }
    }
}

/// A single-threaded runtime: one invocation at a time needs no more. Reports its own failure.
fn async_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| eprintln!("vpc-flow-alert: cannot start the async runtime: {err}"))
        .ok()
}

/// Runs the Lambda runtime loop until the runtime stops it; start-up errors exit 1.
fn run_function() -> ExitCode {
    let Some(runtime) = async_runtime() else {
        return ExitCode::from(1);
    };
    match runtime.block_on(crate::function::run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("vpc-flow-alert: {err}");
            ExitCode::from(1)
        }
    }
}

impl CheckArgs {
    /// The environment's settings with the flags given on top.
    fn raw_config(&self, env: &impl Fn(&str) -> Option<String>) -> RawConfig {
        let mut raw = RawConfig::from_env(env);
        let flag = |name: &str, values: &[String]| {
            (!values.is_empty()).then(|| RawSetting::new(name, values.join(",")))
        };
        let one = |name: &str, value: &Option<String>| {
            value.as_ref().map(|v| RawSetting::new(name, v.clone()))
        };
        if let Some(s) = flag("--vpc-cidr", &self.vpc_cidrs) {
            raw.vpc_cidrs = Some(s);
        }
        if let Some(s) = flag("--ignore-cidr", &self.ignore_cidrs) {
            raw.ignore_cidrs = Some(s);
        }
        for (slot, setting) in [
            (&mut raw.format, one("--format", &self.format)),
            (
                &mut raw.port_scan_threshold,
                one("--port-threshold", &self.port_threshold),
            ),
            (
                &mut raw.host_sweep_threshold,
                one("--host-threshold", &self.host_threshold),
            ),
            (
                &mut raw.max_decoded_bytes,
                one("--max-decoded-bytes", &self.max_decoded_bytes),
            ),
        ] {
            if setting.is_some() {
                *slot = setting;
            }
        }
        raw
    }
}

/// Where `--publish` sends alerts, and how many messages an input may give.
struct PublishTarget {
    topic_arn: String,
    max_alerts: usize,
}

impl CheckArgs {
    fn publish_target(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<PublishTarget>, ConfigError> {
        if !self.publish {
            return Ok(None);
        }
        let topic = match &self.topic_arn {
            Some(arn) => RawSetting::new("--topic-arn", arn.clone()),
            None => env_setting(env, ENV_SNS_TOPIC_ARN).ok_or_else(|| ConfigError::Invalid {
                origin: ENV_SNS_TOPIC_ARN.into(),
                value: String::new(),
                reason: "--publish needs the topic: set SNS_TOPIC_ARN or --topic-arn".into(),
            })?,
        };
        Ok(Some(PublishTarget {
            topic_arn: parse_topic_arn(&topic)?,
            max_alerts: parse_count(
                env_setting(env, ENV_MAX_ALERTS).as_ref(),
                DEFAULT_MAX_ALERTS,
            )?,
        }))
    }
}

fn check(args: CheckArgs, env: impl Fn(&str) -> Option<String>) -> ExitCode {
    let configured = args
        .publish_target(&env)
        .and_then(|target| Ok((args.raw_config(&env).validate()?, target)));
    let (mut config, target) = match configured {
        Ok(both) => both,
        Err(err) => {
            eprintln!("vpc-flow-alert: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    if args.files.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        eprintln!("vpc-flow-alert: `-` (standard input) can be given only once");
        return ExitCode::from(2);
    }
    let mut outgoing: Vec<OutgoingMessage> = Vec::new();
    for unknown in config.format.unknown_fields() {
        eprintln!("vpc-flow-alert: note: field `{unknown}` is not a known flow log field; it is kept and not interpreted");
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let mut printed = 0usize;
    // One incident store for every input, in the order given: the messages the function would
    // send for these deliveries in this order. Everything happens "now".
    let now = unix_now();
    let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
    let mut incidents = IncidentMemory::new(config.incidents);
    let lookup = match args.enrich {
        false => None,
        true => {
            let Some(runtime) = async_runtime() else {
                return ExitCode::from(1);
            };
            let client = runtime.block_on(async { ec2_client(&sdk_config().await) });
            let lookup = SenderLookup::new(client).with_budget(Duration::from_secs(10));
            Some((runtime, lookup))
        }
    };
    let jobs = args.jobs.map_or_else(
        || thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    // A job no input is read on inflates gzip beside the scanning (one large file, say).
    config.inflate_apart = jobs > args.files.len();
    let mut stopped: Option<ExitCode> = None;
    // S3, for `s3://` inputs and the objects of S3 notifications, started when first needed.
    let s3: OnceLock<Result<BlockingS3, String>> = OnceLock::new();
    let scan = |path: &Path| -> Result<Report, DecodeError> {
        let named = path.to_str().and_then(ObjectRef::from_url);
        let (objects, wanted) = match named {
            Some(object) => (vec![object], Wanted::Any),
            None => match scan_path(path, &config) {
                Err(DecodeError::Notification(objects)) => (objects, Wanted::FlowLogKeys),
                read => return read,
            },
        };
        let s3 = s3
            .get_or_init(|| BlockingS3::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| DecodeError::Io(io::Error::other(format!("cannot start S3: {e}"))))?;
        let name = path.display();
        s3.scan(&objects, &config, wanted, |why| {
            eprintln!("vpc-flow-alert: {name}: skipped {why}")
        })
    };
    scan_in_order(&args.files, scan, jobs, |path, read| {
        if args.per_input {
            incidents = IncidentMemory::new(config.incidents);
        }
        let name = path.display().to_string();
        // An input read in part (cut off, a header naming no usable format, a notification with
        // an object that failed) still shows what was read, then fails.
        let (mut report, cut) = match read {
            Ok(report) => (report, None),
            Err(DecodeError::Cut { read, cause, note }) => (*read, Some((cause, note))),
            Err(err) => {
                eprintln!("vpc-flow-alert: {name}: {err}");
                failed = true;
                return true;
            }
        };
        eprintln!("{name}: {report}");
        // A refused header line names the cause itself: no format option would help.
        let refused = cut.as_ref().is_some_and(|(cause, _)| cause.is_header());
        if report.counts.records > 0 && report.counts.malformed == report.counts.records && !refused
        {
            eprintln!(
                "vpc-flow-alert: warning: {name}: every record is malformed: does the flow log use this {}-field format? Set --format or {ENV_FLOW_LOG_FORMAT} to its format (default: {DEFAULT_FORMAT})",
                config.format.len()
            );
        }
        // Alerts are written as they come, a few at a time for the EC2 lookup, so that a file
        // with tens of thousands of sources never holds all its alerts; publishing gathers
        // them as the function does (the first whole, the others briefly for the digest).
        let chunk = match &lookup {
            Some(_) => LOOKUP_CHUNK,
            None => 1,
        };
        let mut claims = target
            .as_ref()
            .map(|t| Claims::new(t.max_alerts.saturating_add(DIGEST_LISTED), false));
        let mut held: Vec<Alert> = Vec::new();
        let mut page: Option<(Alert, usize)> = None;
        let mut written = Ok(());
        // After a failed lookup the input's other alerts are not looked up: each call would
        // wait out the lookup's budget again.
        let mut looking_up = lookup.is_some();
        let mut flush = |held: &mut Vec<Alert>| -> io::Result<()> {
            if let (Some((runtime, lookup)), true) = (&lookup, looking_up) {
                if let Err(err) = runtime.block_on(lookup.enrich(held)) {
                    eprintln!("vpc-flow-alert: warning: {name}: {err}; the alerts name the senders by address only");
                    looking_up = false;
                }
            }
            match &mut page {
                Some((_, count)) => *count += held.len(),
                None => page = held.first().map(|a| (a.clone(), held.len())),
            }
            let written = write_alerts(&mut out, held, args.output, &mut printed);
            if let Some(claims) = &mut claims {
                for alert in held.drain(..) {
                    let brief = Brief::of(&alert);
                    claims.count(&brief);
                    claims.offer(None, brief, || alert);
                }
            }
            written
        };
        let activities = std::mem::take(&mut report.activities);
        let key = (report.fingerprint, now);
        for_each_alert(
            &mut incidents,
            activities,
            key,
            &report.origin,
            region.as_deref(),
            |mut alert| {
                // An S3 object's key names its region.
                if let Some(own) = report.region_of(alert.source) {
                    alert.region = Some(own.to_owned());
                }
                held.push(alert);
                if held.len() >= chunk {
                    written = flush(&mut held);
                    held.clear();
                }
                written.is_ok()
            },
        );
        if written.is_ok() {
            written = flush(&mut held);
        }
        if let (Ok(()), Output::Text, Some((first, count))) = (&written, args.output, &page) {
            written = write_page(&mut out, first, *count);
        }
        if let Err(err) = written {
            stopped = Some(output_error(err));
            return false;
        }
        if let (Some(target), Some(claims)) = (&target, claims) {
            let gathered = claims.finish();
            outgoing.extend(messages_of(
                &gathered.alerts,
                &gathered.briefs,
                target.max_alerts,
                true,
            ));
        }
        if let Some((cause, note)) = cut {
            eprintln!(
                "vpc-flow-alert: {name}: {cause} ({note}; the alerts above are from what was read)"
            );
            failed = true;
        }
        true
    });
    if let Some(code) = stopped {
        return code;
    }
    if let Err(err) = out.flush() {
        return output_error(err);
    }
    if let Some(target) = &target {
        if !publish(&target.topic_arn, &outgoing) {
            failed = true;
        }
    }
    ExitCode::from(if failed { 1 } else { 0 })
}

/// Publishes with the Lambda's own publisher; reports on stderr. False when something failed.
fn publish(topic_arn: &str, messages: &[OutgoingMessage]) -> bool {
    let Some(runtime) = async_runtime() else {
        return false;
    };
    let outcome = runtime.block_on(async {
        let sink = SnsSink::new(aws_sdk_sns::Client::new(&sdk_config().await), topic_arn);
        let deadline = Instant::now() + Duration::from_secs(60);
        publish_all(&sink, messages, deadline, RetryPolicy::default()).await
    });
    eprintln!(
        "vpc-flow-alert: published {} messages to {topic_arn}",
        outcome.published.len()
    );
    for (i, reason) in &outcome.failed {
        eprintln!(
            "vpc-flow-alert: not published: {}: {reason}",
            messages[*i].subject
        );
    }
    outcome.failed.is_empty()
}

fn write_alerts(
    out: &mut impl Write,
    alerts: &[Alert],
    output: Output,
    printed: &mut usize,
) -> io::Result<()> {
    for alert in alerts {
        match output {
            Output::Json => {
                render::write_json(out, alert)?;
                writeln!(out)?;
            }
            Output::Text => {
                if *printed > 0 {
                    writeln!(out, "\n{}\n", "=".repeat(72))?;
                }
                writeln!(out, "Subject: {}\n", render::subject(alert))?;
                write!(out, "{}", render::email(alert))?;
            }
        }
        *printed += 1;
    }
    Ok(())
}

/// The text the phone gets for one input's alerts, after them.
fn write_page(out: &mut impl Write, first: &Alert, count: usize) -> io::Result<()> {
    writeln!(out, "\n{}\n", "=".repeat(72))?;
    writeln!(
        out,
        "Text:    {}{}",
        render::sms_prefix(),
        page_line(first, count)
    )
}

/// Alerts looked up in EC2 together (one DescribeNetworkInterfaces call for their addresses).
const LOOKUP_CHUNK: usize = 100;

/// A closed pipe (`check ... | head`) is not an error; anything else on stdout is.
fn output_error(err: io::Error) -> ExitCode {
    if err.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("vpc-flow-alert: cannot write output: {err}");
    ExitCode::from(1)
}

/// Default shown in `--help` for the decode limit; kept next to the flag's text.
const _: () = assert!(DEFAULT_MAX_DECODED_BYTES == 16_777_216);
