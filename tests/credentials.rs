//! `check --publish` and `check --enrich` work with the credentials people really have: SSO
//! and `credential_process` profiles load (the aws-config features they need are built in),
//! without any network call.

use aws_credential_types::provider::ProvideCredentials;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};

fn profile_files(name: &str, text: &str) -> EnvConfigFiles {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    std::fs::write(&path, text).unwrap();
    EnvConfigFiles::builder()
        .with_file(EnvConfigFileKind::Config, path)
        .build()
}

async fn credentials(name: &str, config: &str) -> Result<String, String> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .profile_files(profile_files(name, config))
        .profile_name(name)
        .load()
        .await;
    let provider = sdk.credentials_provider().expect("a credentials provider");
    provider
        .provide_credentials()
        .await
        .map(|c| c.access_key_id().to_string())
        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
}

#[tokio::test]
async fn a_credential_process_profile_gives_credentials() {
    let answer = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("process-answer.json");
    std::fs::write(
        &answer,
        r#"{"Version": 1, "AccessKeyId": "AKIDFROMPROCESS", "SecretAccessKey": "secret"}"#,
    )
    .unwrap();
    let config = format!(
        "[profile process-user]\nregion = us-east-1\ncredential_process = cat {}\n",
        answer.display()
    );
    assert_eq!(
        credentials("process-user", &config).await.unwrap(),
        "AKIDFROMPROCESS"
    );
}

#[tokio::test]
async fn an_sso_profile_gets_past_loading_to_the_sso_token() {
    let config = "[profile sso-user]
sso_session = corp
sso_account_id = 111122223333
sso_role_name = SecurityAudit
region = us-east-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1
";
    // No `aws sso login` happened here: the provider looks for the cached token, which is the
    // step after loading the profile; it must not say that SSO support is missing.
    let err = credentials("sso-user", config).await.unwrap_err();
    assert!(!err.contains("FeatureNotEnabled"), "{err}");
    assert!(!err.to_lowercase().contains("feature"), "{err}");
}
