//! The deployment template agrees with the binary: the function's environment is exactly what
//! the binary reads, and the default filter pattern is what `filter-pattern` prints.

use std::collections::BTreeSet;

use vpc_flow_alert::function::ENVIRONMENT;
use vpc_flow_alert::FlowFormat;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap()
}

/// The keys of the block that follows `header` (a line ending in `:`), by indentation.
fn block_keys(text: &str, header: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != header);
    let header_line = lines
        .next()
        .unwrap_or_else(|| panic!("no `{header}` in the template"));
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(header_line);
    lines
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .filter(|l| indent(l) == base + 2 && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

/// The `Default:` of a parameter, unquoted.
fn parameter_default(text: &str, name: &str) -> String {
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != format!("{name}:"))
        .take_while(|l| !l.trim().is_empty())
        .collect();
    let default = block
        .iter()
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .unwrap_or_else(|| panic!("{name} has no default"));
    default.trim_matches('\'').to_string()
}

#[test]
fn the_functions_environment_is_exactly_what_the_binary_reads() {
    let text = template();
    let in_template: BTreeSet<String> = block_keys(&text, "Variables:").into_iter().collect();
    let read: BTreeSet<String> = ENVIRONMENT.iter().map(|s| s.to_string()).collect();
    assert_eq!(in_template, read);
}

#[test]
fn the_default_filter_pattern_passes_rejects_and_skipdata_whatever_the_field_order() {
    let text = template();
    let format = parameter_default(&text, "FlowLogFormat");
    let parsed = FlowFormat::parse(&format).unwrap();
    assert!(
        format.starts_with(&FlowFormat::default_v2().to_string()),
        "the default fields come first: {format}"
    );
    for field in ["flow-direction", "tcp-flags", "pkt-srcaddr", "instance-id"] {
        assert!(
            format.contains(&format!("${{{field}}}")),
            "{field} in {format}"
        );
    }
    assert_eq!(parsed.unknown_fields().count(), 0);
    assert_eq!(
        parameter_default(&text, "FilterPattern"),
        vpc_flow_alert::flow::format::PLAIN_FILTER_PATTERN
    );
    // The structured pattern users may choose instead is what `filter-pattern` prints.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_vpc-flow-alert"))
        .args(["filter-pattern", "--format", &format])
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert!(String::from_utf8(printed.stdout)
        .unwrap()
        .contains("action=REJECT"));
}

#[test]
fn the_topics_display_name_is_the_one_the_sms_budget_counts() {
    use vpc_flow_alert::present::render::TOPIC_DISPLAY_NAME;
    let text = template();
    let alert_topic: String = text
        .lines()
        .skip_while(|l| l.trim() != "AlertTopic:")
        .find_map(|l| l.trim().strip_prefix("DisplayName: "))
        .expect("the alert topic has a DisplayName")
        .to_string();
    assert_eq!(alert_topic, TOPIC_DISPLAY_NAME);
}

#[test]
fn the_thresholds_cannot_exceed_what_distinct_counts_keep() {
    let text = template();
    for name in ["PortScanThreshold", "HostSweepThreshold"] {
        let max: usize = text
            .lines()
            .skip_while(|l| l.trim() != format!("{name}:"))
            .find_map(|l| l.trim().strip_prefix("MaxValue: "))
            .unwrap_or_else(|| panic!("{name} has no MaxValue"))
            .parse()
            .unwrap();
        assert_eq!(max, vpc_flow_alert::detect::activity::SET_CAP, "{name}");
    }
}

#[test]
fn the_local_invoke_files_and_command_match_the_function_and_the_template() {
    let root = env!("CARGO_MANIFEST_DIR");
    let env: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/events/local-env.json")).unwrap(),
    )
    .unwrap();
    let vars: BTreeSet<String> = env["VpcFlowAlertFunction"]
        .as_object()
        .expect("variables of VpcFlowAlertFunction")
        .keys()
        .cloned()
        .collect();
    let read: BTreeSet<String> = ENVIRONMENT.iter().map(|s| s.to_string()).collect();
    assert_eq!(vars, read);
    assert_eq!(env["VpcFlowAlertFunction"]["DRY_RUN"], "true");
    // The README's command: its files exist, its parameters are the template's.
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("sam local invoke VpcFlowAlertFunction")
        })
        .expect("the README shows sam local invoke");
    let words: Vec<&str> = command.split_whitespace().collect();
    for flag in ["-e", "--env-vars"] {
        let i = words.iter().position(|w| *w == flag).unwrap();
        assert!(
            std::path::Path::new(&format!("{root}/{}", words[i + 1])).exists(),
            "{command}"
        );
    }
    let i = words
        .iter()
        .position(|w| *w == "--parameter-overrides")
        .unwrap();
    let text = template();
    for assignment in &words[i + 1..] {
        let name = assignment.split('=').next().unwrap();
        assert!(
            text.contains(&format!("\n  {name}:\n")),
            "{name} is not a parameter"
        );
    }
}

#[test]
fn the_incident_tables_key_and_ttl_are_the_attributes_the_binary_writes() {
    use vpc_flow_alert::aws::state::{KEY, TTL_ATTRIBUTE};
    let text = template();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != "IncidentTable:")
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .collect();
    let after = |header: &str| {
        table
            .iter()
            .skip_while(|l| l.trim() != header)
            .find_map(|l| {
                l.trim()
                    .strip_prefix("- AttributeName: ")
                    .or(l.trim().strip_prefix("AttributeName: "))
            })
            .unwrap_or_else(|| panic!("no AttributeName under {header}"))
            .to_string()
    };
    assert_eq!(after("KeySchema:"), KEY);
    assert_eq!(after("TimeToLiveSpecification:"), TTL_ATTRIBUTE);
    assert!(table
        .iter()
        .any(|l| l.trim() == "BillingMode: PAY_PER_REQUEST"));
    // The function may update and read items of that table, and nothing else of DynamoDB.
    assert!(text.contains(
        "Action: [dynamodb:UpdateItem, dynamodb:GetItem]\n                Resource: !GetAtt IncidentTable.Arn"
    ));
}
