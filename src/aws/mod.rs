//! The AWS edge: publishing to SNS ([`publish`]), the shared incident table in DynamoDB
//! ([`state`]), the senders' owners in EC2 ([`ec2`]) and flow log objects in S3 ([`s3`]),
//! with the SDK configuration they use.

pub mod ec2;
pub mod publish;
pub mod s3;
pub mod state;

use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};

/// An SDK call's error in one line: the service's code and message when the service answered
/// (not the raw response the SDK's own text carries), else the chain of causes (a timeout, a
/// refused connection).
pub(crate) fn error_text<E: ProvideErrorMetadata + std::error::Error>(err: &E) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(err)
            .to_string()
            .chars()
            .take(300)
            .collect(),
    }
}

/// Loads the AWS configuration with retries and timeouts that fit inside an invocation: the
/// SDK retries throttling and server errors itself (3 attempts), and no attempt may hang.
pub async fn sdk_config() -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await
}

/// An EC2 client for the sender lookups: one attempt and a short timeout, as the lookup gives
/// up after a second anyway and the alerts go out without it.
pub fn ec2_client(config: &aws_config::SdkConfig) -> aws_sdk_ec2::Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_timeout(Duration::from_secs(1))
        .build();
    let config = aws_sdk_ec2::config::Builder::from(config)
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// A DynamoDB client for the incident table: state must never hold up an alert, so calls give
/// up sooner than SNS calls (a second an attempt, two and a half in all), and the function
/// falls back to its own memory.
pub fn dynamodb_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(Duration::from_secs(1))
        .operation_timeout(Duration::from_millis(2500))
        .build();
    let config = aws_sdk_dynamodb::config::Builder::from(config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
