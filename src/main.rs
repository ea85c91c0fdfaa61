use std::process::ExitCode;

fn main() -> ExitCode {
    vpc_flow_alert::cli::main()
}
