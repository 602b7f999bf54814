//! Shell completions. clap writes the script; `--profile` then completes the profiles the
//! config knows *when completing* (bash, zsh and fish ask `cta-data config profiles`), so a
//! profile added to the config file later completes without regenerating the script.
//! (clap's Elvish and PowerShell scripts complete no option values.)

use clap::builder::PossibleValuesParser;
use clap_complete::Shell;

/// What clap writes where the profile names go.
const SENTINEL: &str = "CTADATA_PROFILE_NAMES_";

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command().mut_arg("profile", |a| {
        a.value_parser(PossibleValuesParser::new([SENTINEL]))
    });
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cta-data", &mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let ask = "cta-data config profiles 2>/dev/null";
    let text = match shell {
        // clap_complete 4.6 names the case labels of subcommands `cta__subcmd__data__...`
        // but sets `cmd=cta__data__...`: no option of any subcommand would complete.
        Shell::Bash => text
            .replace(&format!("\"{SENTINEL}\""), &format!("\"$({ask})\""))
            .replace("cta__subcmd__data", "cta__data"),
        Shell::Zsh => text.replace(
            &format!("({SENTINEL})"),
            &format!("{{compadd -- ${{(f)\"$({ask})\"}}}}"),
        ),
        Shell::Fish => text.replace(&format!("\"{SENTINEL}\\t''\""), &format!("\"({ask})\"")),
        _ => text,
    };
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_zsh_and_fish_ask_when_completing() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            assert!(!text.contains(SENTINEL), "{shell}: {text}");
            assert!(text.contains("cta-data config profiles"), "{shell}");
        }
    }
}
