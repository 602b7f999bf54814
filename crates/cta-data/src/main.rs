//! `cta-data`: the binary; everything is in the library's [`cta_data::main_with_args`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(cta_data::main_with_args(std::env::args_os()))
}
