//! Reading a new password for `mqgate passwd`: a no-echo prompt (asked twice) on a
//! terminal, else one line of stdin. Never from the command line.

use std::io::{BufRead as _, IsTerminal as _};

use crate::error::Error;

/// Longest password accepted (the MQTT binary-data limit).
const MAX_PASSWORD_LEN: usize = 65_535;

/// Reads a password: prompts without echo (twice when `confirm`) if stdin is a
/// terminal, otherwise reads one line from stdin (without its line ending).
pub fn read_password(prompt: &str, confirm: bool) -> Result<String, Error> {
    let password = if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password(prompt).map_err(|e| Error::PasswordInput(e.to_string()))?;
        if confirm {
            let again = rpassword::prompt_password("Reenter password: ")
                .map_err(|e| Error::PasswordInput(e.to_string()))?;
            if again != first {
                return Err(Error::PasswordInput("passwords do not match".into()));
            }
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::PasswordInput(e.to_string()))?;
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
    };
    if password.is_empty() {
        return Err(Error::PasswordInput("empty password".into()));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::PasswordInput("longer than 65535 bytes".into()));
    }
    Ok(password)
}
